package ledger

import (
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback asks the kernel to start writing f's dirty pages, those
// that badger wrote through its memory mapping included, and does not wait
// for them (sync_file_range with SYNC_FILE_RANGE_WRITE): no journal
// commit, no cache flush, nothing made durable.
func startWriteback(f *os.File) error {
	return unix.SyncFileRange(int(f.Fd()), 0, 0, unix.SYNC_FILE_RANGE_WRITE)
}
