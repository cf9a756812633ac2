package node

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// ErrSecretMode: a secret file of the data directory can be read by its
// group or by others. The message names the file and the chmod that fixes
// it; check who could have read the file before starting the node.
var ErrSecretMode = errors.New("secret file readable by others")

// CheckSecrets checks that every secret file of dir exists and is readable
// by its owner only (no group or other permission bits). The storage key
// may live outside dir (FileConfig.StorageKeyPath): absent from dir, it is
// checked where it is read.
func CheckSecrets(dir string) error {
	for _, name := range SecretFiles {
		path := filepath.Join(dir, name)
		fi, err := os.Stat(path)
		if name == StorageKeyFile && errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("check secret %s: %w", path, err)
		}
		if err := checkSecretMode(path, fi); err != nil {
			return err
		}
	}
	return nil
}

// checkSecretMode refuses a secret file that its group or others may read,
// naming it and the chmod that fixes it, as ssh refuses such a key.
func checkSecretMode(path string, fi os.FileInfo) error {
	if m := fi.Mode().Perm(); m&0o077 != 0 {
		return fmt.Errorf("check secret %s: mode %04o lets group or others read it; run `chmod 600 %s`: %w",
			path, m, path, ErrSecretMode)
	}
	return nil
}

// writeSecret writes b to path with mode 0600, refusing to replace a file.
func writeSecret(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, secretFileMode)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// writeHexSecret writes n random bytes to path in hex, with mode 0600.
func writeHexSecret(path string, n int) error {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	return writeSecret(path, []byte(hex.EncodeToString(b)+"\n"))
}

// readHexSecret reads a secret written by writeHexSecret and checks its
// length.
func readHexSecret(path string, n int) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	k, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(k) != n {
		return nil, fmt.Errorf("read %s: want %d bytes in hex", path, n)
	}
	return k, nil
}

// NewToken returns a fresh API token: 32 random bytes, in the text form
// users keep in their token files.
func NewToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("new token: %w", err)
	}
	return "xbt_" + hex.EncodeToString(b), nil
}

// TokenHash returns the hex SHA-256 of a token: the only form the node
// stores.
func TokenHash(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// ReadToken reads a token file: the token is its first line. A file its
// group or others may read is refused with ErrSecretMode, as ssh refuses
// such a key: whoever could read it may hold the token.
func ReadToken(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("read token: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("read token: %w", err)
	}
	if err := checkSecretMode(path, fi); err != nil {
		return "", err
	}
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return "", fmt.Errorf("read token %s: %w", path, err)
	}
	tok, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	tok = strings.TrimSpace(tok)
	if tok == "" {
		return "", fmt.Errorf("read token %s: file is empty", path)
	}
	return tok, nil
}
