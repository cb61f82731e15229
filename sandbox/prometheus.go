package sandbox

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"sigs.k8s.io/yaml"
)

// startPrometheus runs Debian's prometheus scraping etcd, the API server,
// the real kubelets (and their cAdvisor) and every pod annotated
// prometheus.io/scrape=true, such as the demo app.
func (s *State) startPrometheus(ctx context.Context, p Plan, cp *controlPlane, etcdMetricsPort int) (string, error) {
	dir := filepath.Join(s.Config.Dir(), "prometheus")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(cp.ids.admin.token), 0o600); err != nil {
		return "", err
	}
	auth := map[string]any{
		"scheme":        "https",
		"authorization": map[string]any{"credentials_file": tokenFile},
		"tls_config":    map[string]any{"ca_file": cp.pki.path("ca.crt")},
	}
	job := func(name string, extra map[string]any) map[string]any {
		j := map[string]any{"job_name": name}
		for k, v := range extra {
			j[k] = v
		}
		return j
	}
	with := func(base map[string]any, kv ...any) map[string]any {
		out := map[string]any{}
		for k, v := range base {
			out[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			out[kv[i].(string)] = kv[i+1]
		}
		return out
	}
	// Pod discovery: Debian's Prometheus lacks kubernetes_sd_configs.
	sdPort, err := freePort(loopback)
	if err != nil {
		return "", err
	}
	sdURL := fmt.Sprintf("http://127.0.0.1:%d", sdPort)
	sd, err := s.start(procSpec{name: "pod-targets", bin: s.faultlineBinary(), ports: []int{sdPort}, args: []string{
		"sandbox", "pod-targets", "--kubeconfig=" + filepath.Join(s.Config.Dir(), "kubeconfig"), "--listen=127.0.0.1:" + fmt.Sprint(sdPort),
	}})
	if err != nil {
		return "", err
	}
	if err := sd.waitReady(ctx, 30*time.Second, httpOK(http.DefaultClient, sdURL+"/targets", "")); err != nil {
		return "", err
	}
	var kubelets []string
	for i := range s.Config.RealNodes {
		kubelets = append(kubelets, fmt.Sprintf("%s:10250", p.RealNodeAddr(i)))
	}
	apiHost := cp.server[len("https://"):]
	jobs := []any{
		job("etcd", map[string]any{"static_configs": []any{map[string]any{"targets": []string{fmt.Sprintf("127.0.0.1:%d", etcdMetricsPort)}}}}),
		job("apiserver", with(auth, "static_configs", []any{map[string]any{"targets": []string{apiHost}}})),
	}
	if len(kubelets) > 0 {
		jobs = append(jobs,
			job("kubelet", with(auth, "static_configs", []any{map[string]any{"targets": kubelets}})),
			job("cadvisor", with(auth, "metrics_path", "/metrics/cadvisor", "static_configs", []any{map[string]any{"targets": kubelets}})),
			job("pods", map[string]any{"http_sd_configs": []any{map[string]any{"url": sdURL + "/targets", "refresh_interval": "5s"}}}),
		)
	}
	cfg := map[string]any{
		"global":         map[string]any{"scrape_interval": "5s", "evaluation_interval": "5s"},
		"scrape_configs": jobs,
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return "", err
	}
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, b, 0o644); err != nil {
		return "", err
	}
	port, err := freePort(p.BridgeAddr())
	if err != nil {
		return "", err
	}
	addr := fmt.Sprintf("%s:%d", p.BridgeAddr(), port)
	r, err := s.start(procSpec{name: "prometheus", bin: "prometheus", ports: []int{port}, args: []string{
		"--config.file=" + cfgPath,
		"--storage.tsdb.path=" + filepath.Join(dir, "data"),
		"--storage.tsdb.retention.time=1d",
		"--web.listen-address=" + addr,
		"--log.level=warn",
	}})
	if err != nil {
		return "", err
	}
	url := "http://" + addr
	if err := r.waitReady(ctx, 60*time.Second, httpOK(http.DefaultClient, url+"/-/ready", "")); err != nil {
		return "", err
	}
	return url, nil
}
