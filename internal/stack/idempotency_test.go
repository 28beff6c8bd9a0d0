package stack

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// The stack gives the relay its idempotency table (on demand, PITR, TTL on
// the store's attribute), names it in the relay's environment, and lets the
// relay make exactly the store's four calls on exactly that table.
func TestRelayIdempotencyTable(t *testing.T) {
	for _, o := range []TemplateOptions{{}, {Mode: "nat", AZs: 2}} {
		var doc struct {
			Resources map[string]struct {
				Type       string
				Properties map[string]any
			}
		}
		if err := json.Unmarshal(render(t, o, "json"), &doc); err != nil {
			t.Fatal(err)
		}
		tbl := doc.Resources[IdempotencyTable]
		props, _ := json.Marshal(tbl.Properties)
		var p struct {
			BillingMode                      string
			KeySchema                        []struct{ AttributeName, KeyType string }
			PointInTimeRecoverySpecification struct{ PointInTimeRecoveryEnabled bool }
			TimeToLiveSpecification          struct {
				AttributeName string
				Enabled       bool
			}
		}
		json.Unmarshal(props, &p)
		if tbl.Type != "AWS::DynamoDB::Table" || p.BillingMode != "PAY_PER_REQUEST" || len(p.KeySchema) != 1 || p.KeySchema[0].AttributeName != "pk" ||
			!p.PointInTimeRecoverySpecification.PointInTimeRecoveryEnabled || p.TimeToLiveSpecification.AttributeName != "expires_at" || !p.TimeToLiveSpecification.Enabled {
			t.Fatalf("%+v: table %s %s", o, tbl.Type, props)
		}
		relay, _ := json.Marshal(doc.Resources["Relay"].Properties["Environment"])
		if want := `"OUTGATE_IDEMPOTENCY_TABLE":{"Ref":"IdempotencyTable"}`; !strings.Contains(string(relay), want) {
			t.Errorf("relay environment %s lacks %s", relay, want)
		}
		role, _ := json.Marshal(doc.Resources["RelayRole"].Properties["Policies"])
		var pols []struct {
			PolicyName     string
			PolicyDocument struct{ Statement []map[string]any }
		}
		json.Unmarshal(role, &pols)
		var found bool
		for _, pol := range pols {
			for _, st := range pol.PolicyDocument.Statement {
				res, _ := json.Marshal(st["Resource"])
				acts, _ := json.Marshal(st["Action"])
				if string(res) == `{"Fn::GetAtt":["IdempotencyTable","Arn"]}` {
					found = true
					var a []string
					json.Unmarshal(acts, &a)
					slices.Sort(a)
					if !slices.Equal(a, []string{"dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"}) {
						t.Errorf("relay may %v on the table", a)
					}
				} else if strings.Contains(string(acts), "dynamodb") {
					t.Errorf("a DynamoDB grant on %s", res)
				}
			}
		}
		if !found {
			t.Errorf("%+v: no grant on the table in %s", o, role)
		}
	}
}
