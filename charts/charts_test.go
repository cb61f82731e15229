package charts

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"faultline.dev/faultline/deploy"
	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
	"faultline.dev/faultline/experiments/controller"
	"faultline.dev/faultline/experiments/schedule"
	"faultline.dev/faultline/experiments/schema"
)

var update = flag.Bool("update", false, "rewrite deploy/ from the chart (make generate)")

// allOptions switches every option of the chart on.
func allOptions(t *testing.T) map[string]any {
	t.Helper()
	v, err := chartutil.ReadValuesFile(filepath.Join("faultline", "ci", "all-options-values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestTheChartLintsClean(t *testing.T) {
	tests := map[string]func(*testing.T) map[string]any{
		"with the default values":     func(*testing.T) map[string]any { return nil },
		"with every option turned on": allOptions,
	}
	for name, values := range tests {
		t.Run(name, func(t *testing.T) {
			kv, err := chartutil.ParseKubeVersion(KubeVersion)
			if err != nil {
				t.Fatal(err)
			}
			l := lint.AllWithKubeVersion("faultline", values(t), "faultline-system", kv)
			for _, m := range l.Messages {
				// INFO is advice (an icon); WARNING and ERROR are not clean.
				if m.Severity > support.InfoSev {
					t.Errorf("helm lint: %s", m)
				} else {
					t.Logf("helm lint: %s", m)
				}
			}
		})
	}
}

func TestTheChartRendersAnOperatorThatCanRecoverFaultsEverywhere(t *testing.T) {
	tests := map[string]struct {
		values    func(*testing.T) map[string]any
		wantKinds []string
		noKinds   []string
		image     string
	}{
		"default values: images from the local registry name, no ServiceMonitor": {
			values:    func(*testing.T) map[string]any { return nil },
			wantKinds: []string{"ServiceAccount", "Deployment", "DaemonSet", "Service", "PodDisruptionBudget", "PriorityClass", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding", "ConfigMap"},
			noKinds:   []string{"ServiceMonitor", "Secret"},
			image:     "faultline.local/faultline-agent:0.1.0",
		},
		"every option: a ServiceMonitor and the registry's images": {
			values:    allOptions,
			wantKinds: []string{"ServiceMonitor", "DaemonSet", "Deployment", "ConfigMap"},
			image:     "registry.example.internal/platform/faultline-agent:v0.1.0",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r, objs := renderObjects(t, tc.values(t))
			kinds := map[string]int{}
			for _, o := range objs {
				kinds[o.GetKind()]++
				// The nodes' agent identities have a namespace of their own.
				if ns := o.GetNamespace(); ns != "" && ns != "faultline-system" && ns != "faultline-agents" {
					t.Errorf("%s %s in namespace %s, want faultline-system (or faultline-agents for the agents' identities)", o.GetKind(), o.GetName(), ns)
				}
			}
			for _, k := range tc.wantKinds {
				if kinds[k] == 0 {
					t.Errorf("no %s rendered; kinds: %v", k, kinds)
				}
			}
			for _, k := range tc.noKinds {
				if kinds[k] > 0 {
					t.Errorf("%d %s rendered, want none", kinds[k], k)
				}
			}
			if len(r.CRDs) != 3 {
				t.Errorf("%d CRDs in crds/, want 3", len(r.CRDs))
			}
			for _, o := range objs {
				if o.GetKind() != "DaemonSet" {
					continue
				}
				var ds appsv1.DaemonSet
				if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &ds); err != nil {
					t.Fatal(err)
				}
				ps := ds.Spec.Template.Spec
				c := ps.Containers[0]
				if !ps.HostPID || !ps.HostNetwork || c.SecurityContext == nil || c.SecurityContext.Privileged == nil || !*c.SecurityContext.Privileged {
					t.Errorf("agent: hostPID %v hostNetwork %v privileged %v: it needs all three to reach processes, netns and cgroups", ps.HostPID, ps.HostNetwork, c.SecurityContext)
				}
				if !slices.ContainsFunc(ps.Tolerations, func(tl corev1Toleration) bool { return tl.Operator == "Exists" && tl.Key == "" }) {
					t.Errorf("agent tolerations %v: want every taint tolerated, so that it recovers faults on NotReady nodes", ps.Tolerations)
				}
				if r := c.Resources; r.Requests.Memory().Cmp(*r.Limits.Memory()) != 0 || r.Requests.Cpu().Cmp(*r.Limits.Cpu()) != 0 || r.Requests.Memory().IsZero() {
					t.Errorf("agent resources %v: want Guaranteed (requests equal to limits), so that the OOM killer spares it and its stressors", r)
				}
				if ps.PriorityClassName == "" {
					t.Error("agent has no PriorityClass: the pressure it makes could evict it")
				}
				if c.Image != tc.image {
					t.Errorf("agent image %s, want %s", c.Image, tc.image)
				}
				mounts := map[string]bool{}
				for _, m := range c.VolumeMounts {
					mounts[m.MountPath] = true
				}
				if !mounts["/sys/fs/cgroup"] || !mounts["/var/lib/faultline"] {
					t.Errorf("agent mounts %v: want the host's cgroups and the ledger's host directory", mounts)
				}
			}
		})
	}
}

type corev1Toleration = corev1.Toleration

func TestWithoutTheAgentNothingPrivilegedIsInstalled(t *testing.T) {
	r, objs := renderObjects(t, map[string]any{"agent": map[string]any{"enabled": false}})
	var kinds []string
	for _, o := range objs {
		if strings.Contains(o.GetName(), "agent") || o.GetKind() == "DaemonSet" {
			t.Errorf("%s %s installed with agent.enabled: false", o.GetKind(), o.GetName())
		}
		kinds = append(kinds, o.GetKind())
	}
	if !slices.Contains(kinds, "Deployment") {
		t.Errorf("kinds %v: the controller must still be installed", kinds)
	}
	if strings.Contains(r.Manifest, "--agent-role") {
		t.Error("the controller makes agent identities with agent.enabled: false")
	}
}

func TestAnAgentPriorityClassIsNamedOnlyWhenItExists(t *testing.T) {
	tests := map[string]struct {
		class map[string]any
		want  string
	}{
		"created by the chart":             {map[string]any{"create": true}, "faultline-agent"},
		"neither created nor existing":     {map[string]any{"create": false}, ""},
		"an existing class of the cluster": {map[string]any{"create": false, "existing": true, "name": "system-node-critical"}, "system-node-critical"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, objs := renderObjects(t, map[string]any{"agent": map[string]any{"priorityClass": tc.class}})
			for _, o := range objs {
				if o.GetKind() != "DaemonSet" {
					continue
				}
				got, _, _ := unstructured.NestedString(o.Object, "spec", "template", "spec", "priorityClassName")
				if got != tc.want {
					t.Errorf("priorityClassName %q, want %q", got, tc.want)
				}
			}
		})
	}
}

func TestBadValuesAreRefusedNamingTheField(t *testing.T) {
	tests := map[string]struct {
		values map[string]any
		want   string
	}{
		"no controller replica": {
			values: map[string]any{"controller": map[string]any{"replicas": 0}},
			want:   "/controller/replicas': minimum: got 0, want 1",
		},
		"a relative pod cgroup": {
			values: map[string]any{"agent": map[string]any{"podsCgroup": "kubepods"}},
			want:   "/agent/podsCgroup",
		},
		"a misspelt key": {
			values: map[string]any{"serviceMonitr": map[string]any{"enabled": true}},
			want:   "serviceMonitr",
		},
		"a recovery timeout that is no duration": {
			values: map[string]any{"controller": map[string]any{"recoveryTimeout": "ten minutes"}},
			want:   "/controller/recoveryTimeout",
		},
		"two controllers without leader election": {
			values: map[string]any{"controller": map[string]any{"replicas": 2, "leaderElect": false}},
			want:   "/controller/leaderElect",
		},
		"a priority in the system's reserved range": {
			values: map[string]any{"agent": map[string]any{"priorityClass": map[string]any{"value": 2000000000}}},
			want:   "/agent/priorityClass/value': maximum",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Render(tc.values, "faultline-system")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one naming %s", err, tc.want)
			}
		})
	}
}

// metricNames are the names faultline's controller exports, as Prometheus
// sees them (histograms as their _bucket, _sum and _count series).
func metricNames(t *testing.T) map[string]bool {
	reg := &recordingRegistry{}
	controller.NewMetrics(reg)
	schedule.NewMetrics(reg)
	names := map[string]bool{}
	fq := regexp.MustCompile(`fqName: "([^"]+)"`)
	for _, c := range reg.cs {
		ch := make(chan *prometheus.Desc, 16)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			m := fq.FindStringSubmatch(d.String())
			if m == nil {
				t.Fatalf("no name in %s", d)
			}
			names[m[1]] = true
			if _, ok := c.(prometheus.Histogram); ok {
				for _, s := range []string{"_bucket", "_sum", "_count"} {
					names[m[1]+s] = true
				}
			}
		}
	}
	if len(names) < 5 {
		t.Fatalf("only %d metric names found: %v", len(names), names)
	}
	return names
}

type recordingRegistry struct{ cs []prometheus.Collector }

func (r *recordingRegistry) Register(c prometheus.Collector) error {
	r.cs = append(r.cs, c)
	return nil
}
func (r *recordingRegistry) MustRegister(cs ...prometheus.Collector) { r.cs = append(r.cs, cs...) }
func (r *recordingRegistry) Unregister(prometheus.Collector) bool    { return false }

func TestTheDashboardReadsOnlyMetricsFaultlineExports(t *testing.T) {
	exported := metricNames(t)
	b, err := os.ReadFile(filepath.Join("faultline", "files", "dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard.json: %v", err)
	}
	// A metric name in PromQL is an identifier that is not a function, a
	// keyword, a label (inside by (...) or {...}) or a Grafana variable.
	ident := regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	notMetrics := regexp.MustCompile(`\$\{?\w+\}?|"[^"]*"|\{[^}]*\}|\b(by|without)\s*\([^)]*\)|\[[^\]]*\]`)
	promql := map[string]bool{"sum": true, "max": true, "min": true, "avg": true, "rate": true, "increase": true, "histogram_quantile": true, "le": true}
	used := 0
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			for _, id := range ident.FindAllString(notMetrics.ReplaceAllString(tg.Expr, " "), -1) {
				if promql[id] {
					continue
				}
				used++
				if !exported[id] {
					t.Errorf("panel %q reads %s, which faultline does not export (%s)", p.Title, id, tg.Expr)
				}
			}
		}
	}
	if used == 0 {
		t.Fatal("the dashboard reads no metric at all")
	}
	t.Logf("%d panels, %d metric references, all exported", len(dash.Panels), used)
}

func TestTheNotesTeachTheOptInLabelAndAValidFirstExperiment(t *testing.T) {
	r, err := Render(nil, "faultline-system")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(r.Notes, "kubectl label namespace shop "+v1alpha1.LabelChaosEnabled+"=enabled") {
		t.Errorf("NOTES do not teach the opt-in label %s:\n%s", v1alpha1.LabelChaosEnabled, r.Notes)
	}
	a, b := strings.Index(r.Notes, "<<'YAML'"), strings.LastIndex(r.Notes, "\n  YAML")
	if a < 0 || b < a {
		t.Fatalf("no experiment between <<'YAML' and YAML in the NOTES:\n%s", r.Notes)
	}
	body := r.Notes[strings.Index(r.Notes[a:], "\n")+a+1 : b]
	var lines []string
	for _, l := range strings.Split(body, "\n") {
		lines = append(lines, strings.TrimPrefix(l, "  "))
	}
	var exp v1alpha1.Experiment
	if err := yaml.UnmarshalStrict([]byte(strings.Join(lines, "\n")), &exp); err != nil {
		t.Fatalf("the NOTES' experiment does not parse: %v", err)
	}
	if errs, err := schema.Check(&exp); err != nil || len(errs) > 0 {
		t.Errorf("the NOTES' experiment is refused: %v %v", err, errs.ToAggregate())
	}
}

func TestTheChartsCRDsAreTheGeneratedOnes(t *testing.T) {
	gen, err := filepath.Glob(filepath.Join("..", "deploy", "crds", "*.yaml"))
	if err != nil || len(gen) == 0 {
		t.Fatalf("no generated CRDs: %v", err)
	}
	for _, g := range gen {
		want, _ := os.ReadFile(g)
		got, err := os.ReadFile(filepath.Join("faultline", "crds", filepath.Base(g)))
		if err != nil || string(got) != string(want) {
			t.Errorf("charts/faultline/crds/%s differs from deploy/crds (%v): run make generate", filepath.Base(g), err)
		}
	}
}

// deploy/faultline is the chart rendered with its defaults, for kustomize
// users: generated (make generate), never edited by hand.
func TestDeployHoldsTheChartRendered(t *testing.T) {
	r, err := Render(nil, "faultline-system")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join("..", "deploy", "faultline")
	want := map[string]string{
		"crds.yaml":          strings.Join(r.CRDs, "\n"),
		"faultline.yaml":     "# Generated by make generate from charts/faultline with its default values; do not edit.\n" + r.Manifest,
		"namespace.yaml":     "# Generated by make generate; do not edit.\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: faultline-system\n",
		"kustomization.yaml": "# Generated by make generate; do not edit. Customize in an overlay:\n#   resources: [github.com/.../deploy/faultline]\n# Every object carries its namespace: faultline-system, and faultline-agents\n# for the nodes' FaultAssignments and agent identities (made by the\n# controller), which must hold nothing else.\napiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- namespace.yaml\n- crds.yaml\n- faultline.yaml\n",
	}
	for f, content := range want {
		p := filepath.Join(dir, f)
		if *update {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(p)
		if err != nil || string(got) != content {
			t.Errorf("deploy/faultline/%s is not the chart rendered (%v): run make generate", f, err)
		}
	}
}

// The chart's objectives policy is generated from the declared
// measurements: a measurement added without make generate would be refused
// by the API server.
func TestTheChartHoldsTheObjectivesPolicyOfTheDeclaredMeasurements(t *testing.T) {
	want, err := ObjectivesPolicy()
	if err != nil {
		t.Fatal(err)
	}
	p := ObjectivesPolicyFile
	if *update {
		if err := os.WriteFile(p, want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, want) {
		t.Errorf("charts/%s is not the declared measurements' policy (%v): run make generate", p, err)
	}
}

func TestKustomizeBuildsDeployIntoTheSameObjects(t *testing.T) {
	r, objs := renderObjects(t, nil)
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(filesys.MakeFsOnDisk(), filepath.Join("..", "deploy", "faultline"))
	if err != nil {
		t.Fatalf("kustomize build deploy/faultline: %v", err)
	}
	want := len(objs) + len(r.CRDs) + 1 // and the namespace
	if rm.Size() != want {
		t.Errorf("kustomize built %d objects, want %d (the chart's %d, %d CRDs, the namespace)", rm.Size(), want, len(objs), len(r.CRDs))
	}
}

// RBAC cannot tell one agent pod from another, so the shared service
// account may only ask for a node's token, and the controller gives each
// node's agent the agent ClusterRole's rules for its own assignment.
func TestTheAgentsSharedAccountMayOnlyAskForItsNodesIdentity(t *testing.T) {
	_, objs := renderObjects(t, nil)
	var sharedRoles []string
	var controllerArgs, agentArgs []string
	var policyResources, policyBindings []string
	for _, o := range objs {
		switch o.GetKind() {
		case "ClusterRoleBinding", "RoleBinding":
			var b rbacv1.RoleBinding
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &b); err != nil {
				t.Fatal(err)
			}
			for _, s := range b.Subjects {
				if s.Name == "faultline-agent" {
					sharedRoles = append(sharedRoles, b.RoleRef.Kind+"/"+b.RoleRef.Name)
				}
			}
			if b.RoleRef.Name == "faultline-agent" {
				t.Errorf("%s %s binds the agent ClusterRole: it is a template, bound to no one", o.GetKind(), o.GetName())
			}
		case "Role":
			if o.GetName() != "faultline-agents-token" {
				continue
			}
			if o.GetNamespace() != "faultline-agents" {
				t.Errorf("the shared account's Role is in %s, want the identities' own namespace faultline-agents", o.GetNamespace())
			}
			var role rbacv1.Role
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &role); err != nil {
				t.Fatal(err)
			}
			if len(role.Rules) != 1 || !slices.Equal(role.Rules[0].Resources, []string{"serviceaccounts/token"}) || !slices.Equal(role.Rules[0].Verbs, []string{"create"}) {
				t.Errorf("the shared account's Role: %v, want create serviceaccounts/token only", role.Rules)
			}
		case "Deployment", "DaemonSet":
			var ps corev1.PodSpec
			spec, _, _ := unstructured.NestedMap(o.Object, "spec", "template", "spec")
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(spec, &ps); err != nil {
				t.Fatal(err)
			}
			c := ps.Containers[0]
			if o.GetKind() == "Deployment" {
				controllerArgs = c.Args
			} else {
				agentArgs = c.Args
			}
		case "ValidatingAdmissionPolicyBinding", "ValidatingAdmissionPolicy":
			if o.GetName() == "faultline-objectives" || o.GetName() == TenancyPolicy {
				continue // not an identity's: TestTheChartHoldsTheObjectivesPolicy, TestTheTenancyRoles...
			}
		}
		switch o.GetKind() {
		case "ValidatingAdmissionPolicyBinding":
			policy, _, _ := unstructured.NestedString(o.Object, "spec", "policyName")
			actions, _, _ := unstructured.NestedStringSlice(o.Object, "spec", "validationActions")
			policyBindings = append(policyBindings, policy+":"+strings.Join(actions, ","))
		case "ValidatingAdmissionPolicy":
			rules, _, _ := unstructured.NestedSlice(o.Object, "spec", "matchConstraints", "resourceRules")
			for _, rule := range rules {
				res, _, _ := unstructured.NestedStringSlice(rule.(map[string]any), "resources")
				policyResources = append(policyResources, res...)
			}
		}
	}
	if !slices.Equal(sharedRoles, []string{"Role/faultline-agents-token"}) {
		t.Errorf("the shared agent account is bound to %v, want only Role/faultline-agents-token", sharedRoles)
	}
	if !slices.Contains(agentArgs, "--node-identity") || !slices.Contains(agentArgs, "--agent-namespace=faultline-agents") {
		t.Errorf("agent args %v: want --node-identity --agent-namespace=faultline-agents", agentArgs)
	}
	if !slices.Contains(controllerArgs, "--agent-role=faultline-agent") || !slices.Contains(controllerArgs, "--agent-namespace=faultline-agents") {
		t.Errorf("controller args %v: want --agent-role=faultline-agent --agent-namespace=faultline-agents", controllerArgs)
	}
	if !slices.Equal(policyResources, []string{"serviceaccounts/token", "roles", "rolebindings", "clusterroles", "clusterrolebindings"}) {
		t.Errorf("the policies match %v, want the agents' tokens and the controller's roles and bindings", policyResources)
	}
	if !slices.Equal(policyBindings, []string{"faultline-agent-own-node:Deny", "faultline-controller-agent-identities:Deny"}) {
		t.Errorf("policy bindings %v, want each policy bound with Deny", policyBindings)
	}
}

// renderObjects renders the chart into faultline-system with values and
// decodes its manifest.
func renderObjects(t *testing.T, values map[string]any) (*Rendered, []*unstructured.Unstructured) {
	t.Helper()
	r, err := Render(values, "faultline-system")
	if err != nil {
		t.Fatal(err)
	}
	objs, err := deploy.Decode([]byte(r.Manifest))
	if err != nil {
		t.Fatal(err)
	}
	return r, objs
}

// The tenancy roles grant what their names say and no more, and the policy
// that checks them is installed with the chart even when the user brings
// their own RBAC (rbac.create=false): it is the boundary, not a role.
func TestTheTenancyRolesGrantWhatTheirNamesSay(t *testing.T) {
	type grant struct{ group, resource, verb string }
	allows := func(r rbacv1.ClusterRole, g grant) bool {
		for _, rule := range r.Rules {
			if slices.Contains(rule.APIGroups, g.group) && slices.Contains(rule.Resources, g.resource) && slices.Contains(rule.Verbs, g.verb) {
				return true
			}
		}
		return false
	}
	_, objs := renderObjects(t, nil)
	roles := map[string]rbacv1.ClusterRole{}
	var policy bool
	for _, o := range objs {
		switch {
		case o.GetKind() == "ClusterRole":
			var r rbacv1.ClusterRole
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &r); err != nil {
				t.Fatal(err)
			}
			roles[r.Name] = r
		case o.GetKind() == "ValidatingAdmissionPolicy" && o.GetName() == TenancyPolicy:
			policy = true
			conds, _, _ := unstructured.NestedSlice(o.Object, "spec", "matchConditions")
			if len(conds) != 1 || !strings.Contains(conds[0].(map[string]any)["expression"].(string), "'system:serviceaccount:faultline-system:faultline-controller'") {
				t.Errorf("the tenancy policy's match conditions %v: want only the release's controller let through", conds)
			}
		}
	}
	if !policy {
		t.Fatalf("no ValidatingAdmissionPolicy %s rendered", TenancyPolicy)
	}
	inject := func(resource string) grant { return grant{PermissionGroup, resource, VerbInject} }
	create := grant{"faultline.dev", "experiments", "create"}
	abort := grant{"faultline.dev", "experiments", "patch"}
	tests := map[string]struct {
		role      string
		aggregate string // the built-in role it joins, or ""
		want, not []grant
	}{
		"the viewer reads experiments, schedules and reports, and changes nothing": {
			role: RoleViewer, aggregate: "view",
			want: []grant{{"faultline.dev", "experiments", "list"}, {"faultline.dev", "schedules", "get"}, {"", "configmaps", "get"}},
			not:  []grant{create, abort, {"faultline.dev", "schedules", "update"}, inject(ResourcePods), inject(ResourceNodes)},
		},
		"the experimenter runs experiments and lets its namespace's pods be targets, never nodes": {
			role: RoleExperimenter, aggregate: "edit",
			want: []grant{create, abort, {"faultline.dev", "schedules", "create"}, inject(ResourcePods)},
			not:  []grant{inject(ResourceNodes), {"faultline.dev", "faultassignments", "get"}},
		},
		"the cluster experimenter adds nodes, and joins no built-in role": {
			role: RoleClusterExperimenter,
			want: []grant{create, inject(ResourceNodes), inject(ResourcePods)},
			not:  []grant{{"faultline.dev", "faultassignments", "get"}, {"", "secrets", "get"}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r, ok := roles[tc.role]
			if !ok {
				t.Fatalf("no ClusterRole %s rendered", tc.role)
			}
			for _, g := range tc.want {
				if !allows(r, g) {
					t.Errorf("%s does not grant %s on %s/%s", tc.role, g.verb, g.group, g.resource)
				}
			}
			for _, g := range tc.not {
				if allows(r, g) {
					t.Errorf("%s grants %s on %s/%s", tc.role, g.verb, g.group, g.resource)
				}
			}
			var got []string
			for k, v := range r.Labels {
				if strings.HasPrefix(k, "rbac.authorization.k8s.io/aggregate-to-") && v == "true" {
					got = append(got, strings.TrimPrefix(k, "rbac.authorization.k8s.io/aggregate-to-"))
				}
			}
			if want := []string{tc.aggregate}; (tc.aggregate == "" && len(got) > 0) || (tc.aggregate != "" && !slices.Equal(got, want)) {
				t.Errorf("%s aggregates to %v, want %q", tc.role, got, tc.aggregate)
			}
		})
	}
	_, objs = renderObjects(t, map[string]any{"rbac": map[string]any{"create": false}})
	for _, o := range objs {
		if o.GetKind() == "ValidatingAdmissionPolicy" && o.GetName() == TenancyPolicy {
			return
		}
	}
	t.Errorf("with rbac.create=false the chart renders no %s: the boundary must not depend on who makes the roles", TenancyPolicy)
}

// helm uninstall first drains: a pre-delete hook Job, as the controller
// (whose account and rights are still there then), aborts every running
// experiment and waits for the agents to report every fault recovered,
// for a bounded time that Helm's own default timeout outlasts.
func TestUninstallDrainsEveryFaultBeforeTheAgentsGo(t *testing.T) {
	r, err := Render(nil, "faultline-system")
	if err != nil {
		t.Fatal(err)
	}
	var job *batchv1.Job
	for _, h := range r.Hooks {
		objs, err := deploy.Decode([]byte(h))
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			if o.GetKind() == "Job" && o.GetName() == "faultline-drain" {
				job = &batchv1.Job{}
				if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, job); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if job == nil {
		t.Fatalf("no Job faultline-drain among the hooks (%d rendered)", len(r.Hooks))
	}
	if got := job.Annotations["helm.sh/hook"]; got != "pre-delete" {
		t.Errorf("helm.sh/hook %q, want pre-delete", got)
	}
	ps := job.Spec.Template.Spec
	if ps.ServiceAccountName != "faultline-controller" || len(ps.Containers) != 1 ||
		!slices.Equal(ps.Containers[0].Args, []string{"--drain", "--drain-timeout=240s"}) {
		t.Errorf("the drain Job runs %v as %q, want --drain --drain-timeout=240s as faultline-controller", ps.Containers[0].Args, ps.ServiceAccountName)
	}
	// Helm waits 5 minutes for a hook by default: the drain ends before.
	if d := job.Spec.ActiveDeadlineSeconds; d == nil || *d != 300 || job.Spec.BackoffLimit == nil || *job.Spec.BackoffLimit != 0 {
		t.Errorf("activeDeadlineSeconds %v, backoffLimit %v: want 300 (the drain's 240 s and a minute) and 0", job.Spec.ActiveDeadlineSeconds, job.Spec.BackoffLimit)
	}
	off, err := Render(map[string]any{"uninstall": map[string]any{"drain": false}}, "faultline-system")
	if err != nil {
		t.Fatal(err)
	}
	if len(off.Hooks) != 0 {
		t.Errorf("uninstall.drain=false still renders %d hook(s)", len(off.Hooks))
	}
}
