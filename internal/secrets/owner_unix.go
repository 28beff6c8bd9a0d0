//go:build unix

package secrets

import (
	"os"
	"syscall"
)

// ownerUID is the file's owner, for the check that no other user could
// have written the secret.
func ownerUID(fi os.FileInfo) (uint32, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return st.Uid, true
}
