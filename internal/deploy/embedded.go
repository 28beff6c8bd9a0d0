package deploy

import "embed"

// Release builds put the function zips under dist/ before building the CLI
// (`make release`); a plain build embeds nothing and builds them on demand.
//
//go:embed all:dist
var dist embed.FS

func embeddedZips(arch string) (relay, guardian Zip, ok bool) {
	r, err1 := dist.ReadFile("dist/outgate-relay-" + arch + ".zip")
	g, err2 := dist.ReadFile("dist/outgate-guardian-" + arch + ".zip")
	if err1 != nil || err2 != nil {
		return Zip{}, Zip{}, false
	}
	return Zip{"outgate-relay", r}, Zip{"outgate-guardian", g}, true
}
