// Package emf writes CloudWatch Embedded Metric Format lines: JSON log lines
// that CloudWatch Logs turns into metrics, so Lambda functions publish
// metrics without an API call (and without cloudwatch:PutMetricData).
package emf

import (
	"encoding/json"
	"io"
	"sync"
	"time"
)

// Namespace is where outgate's metrics appear in CloudWatch.
const Namespace = "Outgate"

// Metric is one value with its CloudWatch unit (Count, Milliseconds, None...).
type Metric struct {
	Name  string
	Unit  string
	Value float64
}

// Set is metrics that share one list of dimension sets.
type Set struct {
	Dimensions [][]string
	Metrics    []Metric
}

// Writer writes one EMF line per Emit; safe for concurrent use.
type Writer struct {
	mu  sync.Mutex
	w   io.Writer
	now func() time.Time
}

// New writes lines to w.
func New(w io.Writer) *Writer { return &Writer{w: w, now: time.Now} }

type directive struct {
	Namespace  string     `json:"Namespace"`
	Dimensions [][]string `json:"Dimensions"`
	Metrics    []metaDef  `json:"Metrics"`
}

type metaDef struct {
	Name string `json:"Name"`
	Unit string `json:"Unit"`
}

// Emit writes the sets in one line. dims holds the dimension values (every
// name used in a set must be in it); values of the same name in two sets
// must agree, since EMF keeps one value per name in the line.
func (w *Writer) Emit(dims map[string]string, sets ...Set) error {
	root := map[string]any{}
	for k, v := range dims {
		root[k] = v
	}
	var dirs []directive
	for _, s := range sets {
		d := directive{Namespace: Namespace, Dimensions: s.Dimensions}
		if d.Dimensions == nil {
			d.Dimensions = [][]string{}
		}
		for _, m := range s.Metrics {
			d.Metrics = append(d.Metrics, metaDef{m.Name, m.Unit})
			root[m.Name] = m.Value
		}
		dirs = append(dirs, d)
	}
	root["_aws"] = map[string]any{"Timestamp": w.now().UnixMilli(), "CloudWatchMetrics": dirs}
	line, err := json.Marshal(root)
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	_, err = w.w.Write(append(line, '\n'))
	return err
}
