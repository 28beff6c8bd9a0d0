package config

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// StringList accepts either one string or a list of strings.
type StringList []string

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *StringList) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*s = StringList{n.Value}
		return nil
	case yaml.SequenceNode:
		var out []string
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode {
				return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: expected a string", c.Line)}}
			}
			out = append(out, c.Value)
		}
		*s = out
		return nil
	}
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: expected a string or a list of strings", n.Line)}}
}

var sizeRe = regexp.MustCompile(`^(\d+)\s*([a-zA-Z]*)$`)

var sizeUnits = map[string]int64{
	"": 1, "b": 1,
	"kb": 1000, "mb": 1000 * 1000, "gb": 1000 * 1000 * 1000,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30,
}

// ParseSize reads a byte count such as "6MiB", "64 KiB", "1MB" or "1024".
func ParseSize(s string) (int64, error) {
	g := sizeRe.FindStringSubmatch(strings.TrimSpace(s))
	if g == nil {
		return 0, fmt.Errorf("%q is not a size (examples: 6MiB, 512KiB, 1048576)", s)
	}
	unit, ok := sizeUnits[strings.ToLower(g[2])]
	if !ok {
		return 0, fmt.Errorf("%q has an unknown unit %q (use B, KB, MB, GB, KiB, MiB, GiB)", s, g[2])
	}
	n, err := strconv.ParseInt(g[1], 10, 64)
	if err != nil || n > (1<<62)/unit {
		return 0, fmt.Errorf("%q is too large", s)
	}
	if n == 0 {
		return 0, fmt.Errorf("%q must be more than zero", s)
	}
	return n * unit, nil
}

// ParseDuration reads a Go duration such as "10s" or "1m30s". A bare number
// is refused: "30" could mean seconds or milliseconds.
func ParseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		if _, nerr := strconv.ParseFloat(s, 64); nerr == nil {
			return 0, fmt.Errorf("%q needs a unit (examples: 500ms, 10s, 5m)", s)
		}
		return 0, fmt.Errorf("%q is not a duration (examples: 500ms, 10s, 5m)", s)
	}
	if d <= 0 {
		return 0, fmt.Errorf("%q must be more than zero", s)
	}
	return d, nil
}
