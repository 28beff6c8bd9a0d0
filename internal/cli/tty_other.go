//go:build !linux && !windows && !darwin && !freebsd && !netbsd && !openbsd && !dragonfly

package cli

// terminal: on other systems outgate never asks; destructive commands need --yes.
func terminal(uintptr) bool { return false }
