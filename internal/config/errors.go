package config

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Problem is one thing wrong with a config file, at a place in it.
type Problem struct {
	Line, Column int
	Path         string // key path such as clients[1].hosts[0]; empty for the file
	Msg          string
}

// Error lists every problem found in one config file.
type Error struct {
	Source   string
	Problems []Problem
}

func (e *Error) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Source)
		if p.Line > 0 {
			fmt.Fprintf(&b, ":%d:%d", p.Line, p.Column)
		}
		b.WriteString(": ")
		if p.Path != "" {
			b.WriteString(p.Path)
			b.WriteString(": ")
		}
		b.WriteString(p.Msg)
	}
	return b.String()
}

func (e *Error) add(line, col int, path, format string, args ...any) {
	e.Problems = append(e.Problems, Problem{Line: line, Column: col, Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (e *Error) sorted() error {
	if len(e.Problems) == 0 {
		return nil
	}
	sort.SliceStable(e.Problems, func(i, j int) bool {
		a, b := e.Problems[i], e.Problems[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
	return e
}

var yamlLine = regexp.MustCompile(`^line (\d+): (.*)$`)

// addYAML turns yaml.v3's "line N: msg" strings into problems.
func (e *Error) addYAML(msgs []string) {
	for _, m := range msgs {
		if g := yamlLine.FindStringSubmatch(m); g != nil {
			n, _ := strconv.Atoi(g[1])
			e.add(n, 1, "", "%s", g[2])
			continue
		}
		e.add(0, 0, "", "%s", strings.TrimPrefix(m, "yaml: "))
	}
}
