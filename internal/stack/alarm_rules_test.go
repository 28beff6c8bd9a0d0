package stack

import (
	"fmt"
	"regexp"
	"testing"
)

// TestAlarmsMeetPutMetricAlarmRules holds every alarm of every variant to
// the rules CloudWatch enforces at PutMetricAlarm and moto does not:
//   - an alarm has either Metrics or MetricName (with Namespace, Period and
//     Statistic), never both; Metrics excludes Namespace, MetricName,
//     Dimensions, Period, Statistic, ExtendedStatistic and Unit
//     (CloudFormation User Guide, AWS::CloudWatch::Alarm; CloudWatch API
//     Reference, PutMetricAlarm);
//   - Statistic and ExtendedStatistic exclude each other (same pages);
//   - each MetricDataQuery Id starts with a lower-case letter and holds
//     only letters, digits and '_', ids are unique, and exactly one entry
//     returns data, an entry without ReturnData counting as true
//     (AWS::CloudWatch::Alarm MetricDataQuery);
//   - a period is 10, 20, 30 or a multiple of 60 seconds, and
//     EvaluationPeriods x Period is at most one day (PutMetricAlarm,
//     "Period" and "EvaluationPeriods");
//   - DatapointsToAlarm <= EvaluationPeriods, and TreatMissingData is one
//     of breaching, notBreaching, ignore, missing (PutMetricAlarm).
func TestAlarmsMeetPutMetricAlarmRules(t *testing.T) {
	id := regexp.MustCompile(`^[a-z][a-zA-Z0-9_]*$`)
	okPeriod := func(p float64) bool { return p == 10 || p == 20 || p == 30 || p >= 60 && int(p)%60 == 0 }
	for vname, o := range allVariants() {
		for name, r := range resources(t, o) {
			if r["Type"] != "AWS::CloudWatch::Alarm" {
				continue
			}
			p := r["Properties"].(map[string]any)
			where := vname + "/" + name
			evals, _ := p["EvaluationPeriods"].(float64)
			if d, ok := p["DatapointsToAlarm"].(float64); ok && (d < 1 || d > evals) {
				t.Errorf("%s: DatapointsToAlarm %v of EvaluationPeriods %v", where, d, evals)
			}
			switch p["TreatMissingData"] {
			case nil, "breaching", "notBreaching", "ignore", "missing":
			default:
				t.Errorf("%s: TreatMissingData %v", where, p["TreatMissingData"])
			}
			if p["Statistic"] != nil && p["ExtendedStatistic"] != nil {
				t.Errorf("%s: Statistic and ExtendedStatistic together", where)
			}
			metrics, _ := p["Metrics"].([]any)
			if len(metrics) == 0 {
				period, _ := p["Period"].(float64)
				if p["MetricName"] == nil || p["Namespace"] == nil || (p["Statistic"] == nil && p["ExtendedStatistic"] == nil) || !okPeriod(period) || evals*period > 86400 {
					t.Errorf("%s: single-metric alarm incomplete or over a day: %v", where, p)
				}
				continue
			}
			for _, k := range []string{"Namespace", "MetricName", "Dimensions", "Period", "Statistic", "ExtendedStatistic", "Unit"} {
				if p[k] != nil {
					t.Errorf("%s: Metrics together with %s", where, k)
				}
			}
			returning, seen := 0, map[string]bool{}
			for _, m := range metrics {
				q := m.(map[string]any)
				qid := fmt.Sprint(q["Id"])
				if !id.MatchString(qid) || seen[qid] {
					t.Errorf("%s: metric id %q (lower-case start, letters, digits, _; unique)", where, qid)
				}
				seen[qid] = true
				if rd, ok := q["ReturnData"].(bool); !ok || rd {
					returning++
				}
				if ms, ok := q["MetricStat"].(map[string]any); ok {
					period, _ := ms["Period"].(float64)
					if !okPeriod(period) || evals*period > 86400 {
						t.Errorf("%s/%s: period %v over %v evaluations", where, qid, period, evals)
					}
				} else if q["Expression"] == nil {
					t.Errorf("%s/%s: neither MetricStat nor Expression", where, qid)
				}
			}
			if returning != 1 {
				t.Errorf("%s: %d entries return data, want exactly 1", where, returning)
			}
		}
	}
}
