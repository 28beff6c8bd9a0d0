//go:build unix

package server

import "syscall"

// openFileLimit is the process's soft limit on open files (1024 if it
// cannot be read).
func openFileLimit() uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 1024
	}
	return uint64(rl.Cur)
}
