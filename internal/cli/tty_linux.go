package cli

import "golang.org/x/sys/unix"

// terminal reports whether fd is a terminal: it has terminal attributes.
// (A character device is not enough: /dev/null is one, and a script run
// with </dev/null must not count as someone who can answer.)
func terminal(fd uintptr) bool {
	_, err := unix.IoctlGetTermios(int(fd), unix.TCGETS)
	return err == nil
}
