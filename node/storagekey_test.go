package node

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestStorageKeyOutsideDir: Init writes the storage key where it is told
// and config.yaml names it; the node opens with it there; a missing or a
// wrong key makes Open fail naming the file.
func TestStorageKeyOutsideDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "node")
	keyFile := filepath.Join(t.TempDir(), "creds", "storage.key")
	res, err := Init(InitConfig{Dir: dir, Agency: "GB", Name: "Agency GB", StorageKeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	if res.StorageKeyFile != keyFile {
		t.Errorf("StorageKeyFile = %s; want %s", res.StorageKeyFile, keyFile)
	}
	if _, err := os.Stat(filepath.Join(dir, StorageKeyFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("DIR/storage.key: %v; want none", err)
	}
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("stat %s = %v, %v; want mode 0600", keyFile, fi, err)
	}
	fc, err := LoadConfig(dir)
	if err != nil || fc.StorageKeyFile != keyFile {
		t.Fatalf("config storage_key_file = %+v, %v", fc, err)
	}
	if _, err := Init(InitConfig{Dir: filepath.Join(t.TempDir(), "n2"), Agency: "GB", Name: "x", StorageKeyFile: keyFile}); !errors.Is(err, ErrExists) {
		t.Errorf("Init over an existing key file = %v; want ErrExists", err)
	}

	open := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		n, err := Open(ctx, Config{Dir: dir})
		if err == nil {
			err = n.Close()
		}
		return err
	}
	if err := open(); err != nil {
		t.Fatalf("Open with the key outside DIR: %v", err)
	}
	good, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(keyFile); err != nil {
		t.Fatal(err)
	}
	err = open()
	t.Logf("without the key: %v", err)
	if !errors.Is(err, ErrStorageKey) || !strings.Contains(err.Error(), keyFile) {
		t.Errorf("Open without the key = %v; want ErrStorageKey naming %s", err, keyFile)
	}
	if err := writeHexSecret(keyFile, 32); err != nil {
		t.Fatal(err)
	}
	err = open()
	t.Logf("with a wrong key: %v", err)
	if !errors.Is(err, ErrStorageKey) || !strings.Contains(err.Error(), keyFile) ||
		!strings.Contains(err.Error(), "not the key") {
		t.Errorf("Open with a wrong key = %v; want ErrStorageKey naming %s", err, keyFile)
	}
	if err := os.Remove(keyFile); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, good, 0o600); err != nil {
		t.Fatal(err)
	}
	openNode(t, dir)
}

// TestStorageKeyPath: config.yaml's file first, then systemd's
// credentials directory when it holds storage.key, then DIR/storage.key.
func TestStorageKeyPath(t *testing.T) {
	dir, creds := t.TempDir(), t.TempDir()
	var fc FileConfig
	if got := fc.StorageKeyPath(dir, creds); got != filepath.Join(dir, StorageKeyFile) {
		t.Errorf("empty credentials directory: %s", got)
	}
	if err := writeHexSecret(filepath.Join(creds, StorageKeyFile), 32); err != nil {
		t.Fatal(err)
	}
	if got := fc.StorageKeyPath(dir, creds); got != filepath.Join(creds, StorageKeyFile) {
		t.Errorf("credential present: %s", got)
	}
	fc.StorageKeyFile = "keys/s.key"
	if got := fc.StorageKeyPath(dir, creds); got != filepath.Join(dir, "keys/s.key") {
		t.Errorf("relative storage_key_file: %s", got)
	}
	fc.StorageKeyFile = "/etc/xborder/s.key"
	if got := fc.StorageKeyPath(dir, creds); got != "/etc/xborder/s.key" {
		t.Errorf("absolute storage_key_file: %s", got)
	}
}

// TestStorageKeyCredentialMode: systemd (255 and later, on kernels with
// ACLs on its credential file systems) grants the service's user read
// access to a credential with an ACL, so stat shows the ACL mask in the
// group bits (0440). A key in the credentials directory is refused only
// when others may read it; anywhere else any group or other bit refuses
// it, as ssh refuses a key.
func TestStorageKeyCredentialMode(t *testing.T) {
	key := strings.Repeat("ab", 32) + "\n"
	creds, data := t.TempDir(), t.TempDir()
	for _, c := range []struct {
		dir  string
		mode os.FileMode
		ok   bool
	}{
		{creds, 0o400, true},
		{creds, 0o440, true},
		{creds, 0o444, false},
		{data, 0o400, true},
		{data, 0o440, false},
	} {
		path := filepath.Join(c.dir, StorageKeyFile)
		os.Remove(path)
		if err := os.WriteFile(path, []byte(key), c.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, c.mode); err != nil {
			t.Fatal(err)
		}
		_, err := readStorageKey(path, creds)
		if c.ok && err != nil {
			t.Errorf("key of mode %04o in %s: %v; want it read", c.mode, map[bool]string{true: "the credentials directory", false: "the data directory"}[c.dir == creds], err)
		}
		if !c.ok && !errors.Is(err, ErrSecretMode) {
			t.Errorf("key of mode %04o in %s: %v; want ErrSecretMode", c.mode, map[bool]string{true: "the credentials directory", false: "the data directory"}[c.dir == creds], err)
		}
	}
}
