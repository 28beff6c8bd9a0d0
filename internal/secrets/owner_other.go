//go:build !unix

package secrets

import "os"

// ownerUID: files have no numeric owner here (Windows ACLs), so only the
// mode and type checks apply; the gateway runs on Linux, this keeps the CLI
// (config check) building for Windows.
func ownerUID(os.FileInfo) (uint32, bool) { return 0, false }
