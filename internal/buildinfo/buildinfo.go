// Package buildinfo says which build of outgate is running: the CLI's
// `outgate version`, serve's outgate_build_info metric and the Lambda
// functions' startup log line all read it here, so they cannot disagree.
package buildinfo

import (
	"runtime"
	"runtime/debug"
)

// Set by the release build (make release), with -ldflags '-X
// github.com/outgate/outgate/internal/buildinfo.version=v1.2.3' and the same
// for commit and buildDate. Without them the version is the module's (go
// install ...@v1.2.3) or "dev", the commit the Go toolchain's VCS stamp
// (none under -buildvcs=false), and there is no build date.
var (
	version   string
	commit    string
	buildDate string
)

// Info describes one build.
type Info struct {
	Version    string `json:"version"`
	Commit     string `json:"commit"`                // VCS revision, "unknown" outside a checkout
	CommitDate string `json:"commit_date,omitempty"` // the revision's time, from the Go toolchain's VCS stamp
	Modified   bool   `json:"modified,omitempty"`    // built from a checkout with uncommitted changes
	BuildDate  string `json:"build_date,omitempty"`  // stamped by make release
	GoVersion  string `json:"go_version"`
}

// Get reads the build's information from the linker flags and the build
// info the Go toolchain embeds.
func Get() Info {
	i := Info{Version: version, BuildDate: buildDate, Commit: "unknown", GoVersion: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if ok {
		if i.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			i.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				i.Commit = s.Value
			case "vcs.time":
				i.CommitDate = s.Value
			case "vcs.modified":
				i.Modified = s.Value == "true"
			}
		}
	}
	if commit != "" {
		i.Commit = commit
	}
	if i.Version == "" {
		i.Version = "dev"
	}
	return i
}

// Attrs are the fields of a log line that says which build is starting
// (slog key-value pairs).
func (i Info) Attrs() []any {
	a := []any{"version", i.Version, "commit", i.Commit, "go_version", i.GoVersion}
	if i.Modified {
		a = append(a, "modified", true)
	}
	if i.BuildDate != "" {
		a = append(a, "build_date", i.BuildDate)
	}
	return a
}
