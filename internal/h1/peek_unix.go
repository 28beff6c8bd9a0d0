//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package h1

import "syscall"

// canPeek: idle connections can be checked, so they are worth keeping.
const canPeek = true

// peekEmpty reports, without blocking or consuming anything, whether the
// socket has nothing to read and is still open: any byte, an EOF or an
// error means no.
func peekEmpty(raw syscall.RawConn) bool {
	ok := false
	var b [1]byte
	err := raw.Read(func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		ok = err == syscall.EAGAIN || err == syscall.EWOULDBLOCK
		return true // never wait for readiness
	})
	return err == nil && ok
}
