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
		p.write(&b, e.Source, "")
	}
	return b.String()
}

// Warning formats one of Config.Warnings as "file:line:col: warning: path: msg".
func (c *Config) Warning(p Problem) string {
	var b strings.Builder
	p.write(&b, c.Source, "warning: ")
	return b.String()
}

func (p Problem) write(b *strings.Builder, source, kind string) {
	b.WriteString(source)
	if p.Line > 0 {
		fmt.Fprintf(b, ":%d:%d", p.Line, p.Column)
	}
	b.WriteString(": ")
	b.WriteString(kind)
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
}

func (e *Error) add(line, col int, path, format string, args ...any) {
	e.Problems = append(e.Problems, Problem{Line: line, Column: col, Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (e *Error) sorted() error {
	if len(e.Problems) == 0 {
		return nil
	}
	sortProblems(e.Problems)
	return e
}

func sortProblems(ps []Problem) {
	sort.SliceStable(ps, func(i, j int) bool {
		a, b := ps[i], ps[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
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
