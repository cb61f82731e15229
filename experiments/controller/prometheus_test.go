package controller

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"faultline.dev/faultline/analyzers/prometheus"
	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
)

func TestPrometheusConfigFromTheSpec(t *testing.T) {
	apiServer := &prometheus.Target{URL: "https://127.0.0.1:6443/metrics"}
	tests := map[string]struct {
		spec    v1alpha1.Prometheus
		check   func(t *testing.T, c prometheus.Config)
		wantErr string
	}{
		"a server address carries the queries, with their interval and limit": {
			spec: v1alpha1.Prometheus{Address: "http://prom:9090", Queries: []v1alpha1.PrometheusQuery{
				{Name: "p99", Query: "scalar(up)", SuccessCondition: "result == 1.0", FailureLimit: 2, Interval: &metav1.Duration{Duration: 5 * time.Second}},
			}},
			check: func(t *testing.T, c prometheus.Config) {
				if c.Address != "http://prom:9090" || c.Scrape != nil || len(c.Queries) != 1 {
					t.Fatalf("config %+v", c)
				}
				if q := c.Queries[0]; q.Name != "p99" || q.FailureLimit != 2 || q.Interval != 5*time.Second || q.SuccessCondition != "result == 1.0" {
					t.Errorf("query %+v", q)
				}
			},
		},
		"scraping reads each etcd and the API server through the controller's own target": {
			spec: v1alpha1.Prometheus{Scrape: &v1alpha1.Scrape{Etcd: []string{"http://127.0.0.1:2381/metrics"}, APIServer: true}},
			check: func(t *testing.T, c prometheus.Config) {
				if c.Scrape == nil || len(c.Scrape.Etcd) != 1 || c.Scrape.Etcd[0].URL != "http://127.0.0.1:2381/metrics" || c.Scrape.APIServer != apiServer {
					t.Errorf("scrape %+v", c.Scrape)
				}
			},
		},
		"a condition that does not compile is refused, naming the query's field": {
			spec: v1alpha1.Prometheus{Address: "http://prom:9090", Queries: []v1alpha1.PrometheusQuery{
				{Name: "bad", Query: "up", SuccessCondition: "result >"},
			}},
			wantErr: "queries[0].successCondition",
		},
		"queries without a server are refused": {
			spec: v1alpha1.Prometheus{Scrape: &v1alpha1.Scrape{APIServer: true}, Queries: []v1alpha1.PrometheusQuery{
				{Name: "q", Query: "up"},
			}},
			wantErr: "queries: need address",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			exp := &v1alpha1.Experiment{Spec: v1alpha1.ExperimentSpec{Prometheus: &tc.spec}}
			c := PrometheusConfig(exp, apiServer)
			err := c.Validate()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}
