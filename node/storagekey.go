package node

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/dgraph-io/badger/v4"
)

// ErrStorageKey: the storage key is missing, unreadable or not the one the
// data directory's databases were made with. The message names the file;
// give the right one (storage_key_file in config.yaml, or the systemd
// credential storage.key), or restore it from its backup. Without it the
// node's data cannot be read.
var ErrStorageKey = errors.New("storage key")

// StorageKeyPath returns the file the storage key of the data directory
// dir is read from: storage_key_file of config.yaml (relative to dir) when
// set; else credDir/storage.key when credDir, systemd's
// $CREDENTIALS_DIRECTORY as the caller passes it (Config.CredentialsDir),
// holds one; else dir/storage.key.
func (c *FileConfig) StorageKeyPath(dir, credDir string) string {
	if c.StorageKeyFile != "" {
		if filepath.IsAbs(c.StorageKeyFile) {
			return c.StorageKeyFile
		}
		return filepath.Join(dir, c.StorageKeyFile)
	}
	if credDir != "" {
		p := filepath.Join(credDir, StorageKeyFile)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return filepath.Join(dir, StorageKeyFile)
}

// readStorageKey reads the storage key at path, refusing a file its group
// or others may read (ErrSecretMode); the errors name the file. A key in
// credDir, systemd's credentials directory, is refused only when others
// may read it: systemd keeps that directory to the service and, from
// version 255 on kernels with ACLs on its file systems, grants the
// service's user read access with an ACL, whose mask stat shows in the
// group bits (0440).
func readStorageKey(path, credDir string) ([]byte, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w %s: no such file; set storage_key_file in config.yaml to where the key is, or restore the key from its backup: %w",
			ErrStorageKey, path, ErrConfig)
	}
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrStorageKey, path, err)
	}
	if credDir != "" && filepath.Dir(path) == filepath.Clean(credDir) {
		if m := fi.Mode().Perm(); m&0o007 != 0 {
			return nil, fmt.Errorf("check secret %s: mode %04o lets others read the credential; give it to the unit with LoadCredential= or LoadCredentialEncrypted=: %w",
				path, m, ErrSecretMode)
		}
	} else if err := checkSecretMode(path, fi); err != nil {
		return nil, err
	}
	k, err := readHexSecret(path, 32)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStorageKey, err)
	}
	return k, nil
}

// storageKeyErr names the key file in err when the key did not open a
// database: the key is not the one the directory was made with.
func storageKeyErr(err error, path string) error {
	if errors.Is(err, badger.ErrEncryptionKeyMismatch) {
		return fmt.Errorf("%w %s does not open the data directory's databases: it is not the key they were made with (give the right storage_key_file): %w",
			ErrStorageKey, path, err)
	}
	return err
}
