//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package h1

import "syscall"

// canPeek: no idle connection is kept, since none could be reused.
const canPeek = false

// peekEmpty: without a non-blocking peek (Windows, for one) there is no way
// to know that an idle connection is clean and open, so none is reused.
func peekEmpty(syscall.RawConn) bool { return false }
