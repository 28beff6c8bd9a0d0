package emf

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

func TestEmit(t *testing.T) {
	var b bytes.Buffer
	w := New(&b)
	w.now = func() time.Time { return time.UnixMilli(1700000000000) }
	err := w.Emit(map[string]string{"Function": "relay", "Code": "upstream_timeout"},
		Set{Dimensions: [][]string{{"Function"}}, Metrics: []Metric{{"Requests", "Count", 1}, {"Latency", "Milliseconds", 12.5}}},
		Set{Dimensions: [][]string{{"Function", "Code"}}, Metrics: []Metric{{"ErrorsByCode", "Count", 1}}})
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		AWS struct {
			Timestamp         int64
			CloudWatchMetrics []struct {
				Namespace  string
				Dimensions [][]string
				Metrics    []struct{ Name, Unit string }
			}
		} `json:"_aws"`
		Function     string
		Code         string
		Requests     float64
		Latency      float64
		ErrorsByCode float64
	}
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatalf("%v: %s", err, b.String())
	}
	d := got.AWS.CloudWatchMetrics
	if got.AWS.Timestamp != 1700000000000 || len(d) != 2 || d[0].Namespace != "Outgate" || d[1].Dimensions[0][1] != "Code" ||
		d[0].Metrics[1].Unit != "Milliseconds" || got.Latency != 12.5 || got.Function != "relay" || got.ErrorsByCode != 1 {
		t.Errorf("EMF line: %s", b.String())
	}
	if b.Bytes()[b.Len()-1] != '\n' || bytes.Count(b.Bytes(), []byte("\n")) != 1 {
		t.Error("EMF must be exactly one line")
	}
}
