package chaosmesh

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	cm "github.com/chaos-mesh/chaos-mesh/api/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
)

// Targets is what the controller resolved for one fault under faultline's
// safety rules (opted-in namespaces, system namespaces, the blast-radius
// caps). The translation reads nothing else of the cluster.
type Targets struct {
	// Pods by namespace: the pod targets, or, for a Rollout, the pods
	// chosen at its point. Named pods, not a selector, so that Chaos Mesh
	// acts on exactly what the safety rules let through.
	Pods map[string][]string

	// Nodes of node targets. Chaos Mesh acts on pods, so a NetworkLoss on
	// nodes hits the pods of Namespaces running on them.
	Nodes []string

	// Namespaces whose pods on Nodes are hit: the opted-in ones. Leave out
	// those of hostNetwork pods, in which Chaos Mesh would act on the
	// node's own network.
	Namespaces []string

	// APIServer addresses (IPs or CIDRs), for networkLoss.towardAPIServer.
	APIServer []string

	// VolumePath is where the volume that holds diskLatency.pathPrefix is
	// mounted in the target containers (Chaos Mesh mounts over it).
	VolumePath string

	// Deployment of a Rollout: its pod template names the first container
	// and the pods' own grace period.
	Deployment *appsv1.Deployment
}

// Object is the Chaos Mesh object that injects the fault of the
// experiment on the targets: a NetworkChaos, an IOChaos, a StressChaos or
// a PodChaos. It refuses, naming the field, what Chaos Mesh cannot express
// and targets the controller did not resolve.
func Object(exp *v1alpha1.Experiment, fault v1alpha1.Fault, t Targets) (client.Object, error) {
	p := faultPath(exp, fault.Name)
	if errs := fault.ValidateChaosMesh(&exp.Spec.Targets, p); len(errs) > 0 {
		return nil, errs.ToAggregate()
	}
	sel, err := podSelector(exp, t, p)
	if err != nil {
		return nil, err
	}
	meta := objectMeta(exp, fault.Name)
	// Chaos Mesh ends the fault itself at this duration from the object's
	// creation, so no fault outlives a faultline that is gone.
	d := duration(fault.Duration.Duration)
	missing := field.Required(p, "the parameters of its type")
	switch fault.Type {
	case v1alpha1.FaultNetworkLoss:
		if fault.NetworkLoss == nil {
			return nil, missing
		}
		spec, err := networkChaos(fault.NetworkLoss, t, p.Child("networkLoss"))
		if err != nil {
			return nil, err
		}
		spec.PodSelector, spec.Duration = sel, &d
		return &cm.NetworkChaos{TypeMeta: typeMeta(cm.KindNetworkChaos), ObjectMeta: meta, Spec: spec}, nil
	case v1alpha1.FaultDiskLatency:
		if fault.DiskLatency == nil {
			return nil, missing
		}
		spec, err := ioChaos(fault.DiskLatency, t, p.Child("diskLatency"))
		if err != nil {
			return nil, err
		}
		spec.PodSelector, spec.Duration = sel, &d
		return &cm.IOChaos{TypeMeta: typeMeta(cm.KindIOChaos), ObjectMeta: meta, Spec: spec}, nil
	case v1alpha1.FaultMemoryPressure:
		if fault.MemoryPressure == nil {
			return nil, missing
		}
		spec, err := stressChaos(fault.MemoryPressure, p.Child("memoryPressure"))
		if err != nil {
			return nil, err
		}
		spec.PodSelector, spec.Duration = sel, &d
		return &cm.StressChaos{TypeMeta: typeMeta(cm.KindStressChaos), ObjectMeta: meta, Spec: spec}, nil
	case v1alpha1.FaultRollout:
		if fault.Rollout == nil {
			return nil, missing
		}
		spec, err := podChaos(fault.Rollout.EffectiveAction(), t, p.Child("rollout", "action"))
		if err != nil {
			return nil, err
		}
		spec.PodSelector, spec.Duration = sel, &d
		return &cm.PodChaos{TypeMeta: typeMeta(cm.KindPodChaos), ObjectMeta: meta, Spec: spec}, nil
	case v1alpha1.FaultPodKill:
		k := fault.PodKill
		if k == nil {
			return nil, missing
		}
		method := "Delete"
		if k.Method == "Signal" {
			method = "Signal"
		}
		a := v1alpha1.RolloutAction{Method: method, Signal: k.EffectiveSignal(), Container: k.Container, GracePeriodSeconds: k.GracePeriodSeconds}
		spec, err := podChaos(a, t, p.Child("podKill"))
		if err != nil {
			return nil, err
		}
		spec.PodSelector, spec.Duration = sel, &d
		return &cm.PodChaos{TypeMeta: typeMeta(cm.KindPodChaos), ObjectMeta: meta, Spec: spec}, nil
	}
	return nil, field.NotSupported(p.Child("type"), fault.Type, []v1alpha1.FaultType{v1alpha1.FaultNetworkLoss, v1alpha1.FaultRollout, v1alpha1.FaultDiskLatency, v1alpha1.FaultMemoryPressure, v1alpha1.FaultPodKill})
}

// networkChaos is a partition for a loss of 100% toward peers (it drops
// both ways), and otherwise Chaos Mesh's tc netem on the packets the pods
// send: loss, delay and corruption in one object. Chaos Mesh matches no
// ports: towardAPIServer cuts the API server's addresses whole.
func networkChaos(n *v1alpha1.NetworkLoss, t Targets, p *field.Path) (cm.NetworkChaosSpec, error) {
	peers := slices.Clone(n.Peers)
	if n.TowardAPIServer {
		if len(t.APIServer) == 0 {
			return cm.NetworkChaosSpec{}, field.Invalid(p.Child("towardAPIServer"), true, "the API server's addresses are not known (Targets.APIServer is empty)")
		}
		peers = append(peers, t.APIServer...)
	}
	peers = sortedSet(peers)
	spec := cm.NetworkChaosSpec{ExternalTargets: peers}
	if n.LossPercent == 100 && len(peers) > 0 {
		spec.Action, spec.PartitionBehavior = cm.PartitionAction, cm.DropPartitionBehavior
		spec.Direction = map[string]cm.Direction{"egress": cm.To, "ingress": cm.From}[n.Direction]
		if spec.Direction == "" {
			spec.Direction = cm.Both
		}
		return spec, nil
	}
	if n.Direction != "egress" {
		// ValidateChaosMesh refuses it; kept so that this function alone
		// never widens or narrows a fault.
		return spec, field.Invalid(p.Child("direction"), n.Direction, "must be egress under engine chaos-mesh")
	}
	spec.Direction, spec.Device = cm.To, n.Device
	var actions []cm.NetworkChaosAction
	if n.LossPercent > 0 || (n.Delay == nil && n.CorruptPercent == 0) {
		spec.Loss = &cm.LossSpec{Loss: strconv.Itoa(int(n.LossPercent)), Correlation: cm.DefaultCorrelation}
		actions = append(actions, cm.LossAction)
	}
	if n.Delay != nil {
		spec.Delay = &cm.DelaySpec{Latency: duration(n.Delay.Duration), Jitter: cm.DefaultJitter, Correlation: cm.DefaultCorrelation}
		actions = append(actions, cm.DelayAction)
	}
	if n.CorruptPercent > 0 {
		spec.Corrupt = &cm.CorruptSpec{Corrupt: strconv.Itoa(int(n.CorruptPercent)), Correlation: cm.DefaultCorrelation}
		actions = append(actions, cm.CorruptAction)
	}
	spec.Action = cm.NetemAction // several in one tc netem
	if len(actions) == 1 {
		spec.Action = actions[0]
	}
	return spec, nil
}

// ioChaos delays file operations on one volume: Chaos Mesh mounts a FUSE
// file system over the volume's mount path inside the container, so it
// delays what reaches the volume, not the calls of one process.
func ioChaos(d *v1alpha1.DiskLatency, t Targets, p *field.Path) (cm.IOChaosSpec, error) {
	if t.VolumePath == "" {
		return cm.IOChaosSpec{}, field.Invalid(p.Child("pathPrefix"), d.PathPrefix, "no volume of the target containers is known to hold it (Targets.VolumePath is empty)")
	}
	volume, prefix := path.Clean(t.VolumePath), path.Clean(d.PathPrefix)
	if volume != "/" && prefix != volume && !strings.HasPrefix(prefix, volume+"/") {
		return cm.IOChaosSpec{}, field.Invalid(p.Child("pathPrefix"), d.PathPrefix, fmt.Sprintf("not inside the volume mounted at %s; give a directory of that volume", volume))
	}
	percent := d.DelayedPercent()
	if percent < 1 || percent > 100 {
		return cm.IOChaosSpec{}, field.Invalid(p.Child("percent"), percent, "must be between 1 and 100 under engine chaos-mesh (Chaos Mesh reads 0 as 100)")
	}
	// FUSE hands fdatasync to the file system as its fsync operation, and
	// pwrite64 as its write.
	byCall := map[string]cm.IoMethod{"fsync": cm.Fsync, "fdatasync": cm.Fsync, "write": cm.Write, "pwrite64": cm.Write}
	calls := d.Syscalls
	if len(calls) == 0 {
		calls = []string{"fsync", "fdatasync"}
	}
	var methods []cm.IoMethod
	for i, c := range calls {
		m, ok := byCall[c]
		if !ok {
			return cm.IOChaosSpec{}, field.NotSupported(p.Child("syscalls").Index(i), c, []string{"fsync", "fdatasync", "write", "pwrite64"})
		}
		if !slices.Contains(methods, m) {
			methods = append(methods, m)
		}
	}
	slices.Sort(methods)
	return cm.IOChaosSpec{
		ContainerSelector: cm.ContainerSelector{ContainerNames: containers(d.Container)},
		Action:            cm.IoLatency,
		Delay:             duration(d.Delay.Duration),
		Path:              strings.TrimSuffix(prefix, "/") + "/**/*",
		Methods:           methods,
		Percent:           int(percent),
		VolumePath:        volume,
	}, nil
}

// stressChaos is Chaos Mesh's memory stressor in the container's cgroup,
// so it counts against the container's limit as faultline's does. Unlike
// faultline's, it makes the whole size resident at once (rampPerSecond is
// not honoured: this API has no growth time) and holds it until the
// duration ends; over the limit, the kernel OOM-kills whatever it picks,
// the stressor included.
func stressChaos(m *v1alpha1.MemoryPressure, p *field.Path) (cm.StressChaosSpec, error) {
	if m.Size == nil || m.Size.Sign() <= 0 {
		return cm.StressChaosSpec{}, field.Required(p.Child("size"), "a size such as 200Mi under engine chaos-mesh")
	}
	return cm.StressChaosSpec{
		ContainerSelector: cm.ContainerSelector{ContainerNames: containers(m.Container)},
		Stressors: &cm.Stressors{MemoryStressor: &cm.MemoryStressor{
			Stressor: cm.Stressor{Workers: 1},
			// In bytes: Chaos Mesh's stressor reads MB as 10^6 bytes and
			// MiB as 2^20, where Kubernetes writes Mi; bytes cannot be
			// misread.
			Size: fmt.Sprintf("%dB", m.Size.Value()),
		}},
	}, nil
}

// podChaos is a Rollout's action on the pods chosen at its point, or a
// PodKill's, at p: Delete is a pod-kill with the grace period (the kubelet
// sends SIGTERM, then SIGKILL), and the signal SIGKILL a container-kill,
// which the container runtime delivers. faultline itself still starts or
// waits for the rollout and picks the pods.
func podChaos(a v1alpha1.RolloutAction, t Targets, p *field.Path) (cm.PodChaosSpec, error) {
	dep := t.Deployment
	if a.Method == "Delete" {
		spec := cm.PodChaosSpec{Action: cm.PodKillAction}
		switch {
		case a.GracePeriodSeconds != nil:
			spec.GracePeriod = *a.GracePeriodSeconds
		case dep == nil:
			return spec, field.Required(p.Child("gracePeriodSeconds"), "the pods' own grace period is not known under engine chaos-mesh without a Deployment target (Chaos Mesh reads none); give gracePeriodSeconds")
		case dep.Spec.Template.Spec.TerminationGracePeriodSeconds != nil:
			spec.GracePeriod = *dep.Spec.Template.Spec.TerminationGracePeriodSeconds
		default:
			spec.GracePeriod = corev1.DefaultTerminationGracePeriodSeconds
		}
		return spec, nil
	}
	if a.Signal != "SIGKILL" {
		return cm.PodChaosSpec{}, field.Invalid(p.Child("signal"), a.Signal, "under engine chaos-mesh, method Delete or signal SIGKILL")
	}
	name := a.Container
	if name == "" {
		if dep == nil || len(dep.Spec.Template.Spec.Containers) == 0 {
			return cm.PodChaosSpec{}, field.Required(p.Child("container"), "the first container is not known under engine chaos-mesh without a Deployment target; name the container")
		}
		name = dep.Spec.Template.Spec.Containers[0].Name
	}
	return cm.PodChaosSpec{ContainerSelector: cm.ContainerSelector{ContainerNames: []string{name}}, Action: cm.ContainerKillAction}, nil
}

// podSelector picks exactly the resolved targets, all of them (mode all):
// the blast radius was already bounded by the safety rules.
func podSelector(exp *v1alpha1.Experiment, t Targets, p *field.Path) (cm.PodSelector, error) {
	if exp.Spec.Targets.Nodes != nil {
		if len(t.Nodes) == 0 || len(t.Namespaces) == 0 {
			return cm.PodSelector{}, field.Invalid(field.NewPath("spec", "targets", "nodes"), "", "no nodes, or no opted-in namespaces whose pods on them Chaos Mesh may hit (Targets.Nodes, Targets.Namespaces)")
		}
		return cm.PodSelector{Mode: cm.AllMode, Selector: cm.PodSelectorSpec{
			GenericSelectorSpec: cm.GenericSelectorSpec{Namespaces: sortedSet(t.Namespaces)},
			Nodes:               sortedSet(t.Nodes),
		}}, nil
	}
	pods := map[string][]string{}
	for ns, names := range t.Pods {
		if len(names) > 0 {
			pods[ns] = sortedSet(names)
		}
	}
	if len(pods) == 0 {
		return cm.PodSelector{}, field.Invalid(p, "", "no pods to act on (Targets.Pods is empty)")
	}
	namespaces := make([]string, 0, len(pods))
	for ns := range pods {
		namespaces = append(namespaces, ns)
	}
	sort.Strings(namespaces)
	// The namespaces too: Chaos Mesh would otherwise default them to the
	// object's own and filter the named pods by it.
	return cm.PodSelector{Mode: cm.AllMode, Selector: cm.PodSelectorSpec{
		GenericSelectorSpec: cm.GenericSelectorSpec{Namespaces: namespaces},
		Pods:                pods,
	}}, nil
}

// Name of the fault's object: the experiment's and the fault's names. Cut
// to a DNS-1123 label (63 characters, which a label value can also hold)
// when longer, or changed when not a label, it keeps the fault's name and
// ends with a short hash of the whole, so that two experiments never
// share an object.
func Name(experiment, fault string) string {
	whole := experiment + "-" + fault
	if len(validation.IsDNS1123Label(whole)) == 0 {
		return whole
	}
	suffix := "-" + hash(whole)
	if len(validation.IsDNS1123Label(fault)) == 0 {
		suffix = "-" + fault + suffix
	}
	return label(experiment, validation.DNS1123LabelMaxLength-len(suffix)) + suffix
}

// bounded is s as a label value: itself when it is one, otherwise cut and
// hashed as Name does.
func bounded(s string) string {
	if len(validation.IsValidLabelValue(s)) == 0 {
		return s
	}
	suffix := "-" + hash(s)
	return label(s, validation.DNS1123LabelMaxLength-len(suffix)) + suffix
}

// label is s lowered, with '-' for what a DNS label cannot hold, cut to
// most characters; "x" when nothing is left.
func label(s string, most int) string {
	clean := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			return r
		case r >= 'A' && r <= 'Z':
			return r - 'A' + 'a'
		}
		return '-'
	}, s)
	if len(clean) > most {
		clean = clean[:most]
	}
	if clean = strings.Trim(clean, "-"); clean == "" {
		return "x"
	}
	return clean
}

func hash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:8]
}

// objectMeta names, labels and owns the object: the controller finds its
// objects by the experiment's UID, and the garbage collector deletes them
// with the experiment (Chaos Mesh recovers a fault whose object goes).
func objectMeta(exp *v1alpha1.Experiment, fault string) metav1.ObjectMeta {
	m := metav1.ObjectMeta{
		Name:      Name(exp.Name, fault),
		Namespace: exp.Namespace,
		Labels: map[string]string{
			v1alpha1.LabelExperimentName: bounded(exp.Name),
			v1alpha1.LabelExperiment:     string(exp.UID),
			v1alpha1.LabelFault:          fault,
		},
	}
	if exp.UID != "" {
		yes := true
		m.OwnerReferences = []metav1.OwnerReference{{
			APIVersion: v1alpha1.GroupVersion.String(), Kind: "Experiment",
			Name: exp.Name, UID: exp.UID, Controller: &yes,
		}}
	}
	return m
}

func typeMeta(kind string) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: cm.SchemeGroupVersion.String(), Kind: kind}
}

func faultPath(exp *v1alpha1.Experiment, fault string) *field.Path {
	for i, f := range exp.Spec.Faults {
		if f.Name == fault {
			return field.NewPath("spec", "faults").Index(i)
		}
	}
	return field.NewPath("spec", "faults").Key(fault)
}

// duration writes d in a single unit, such as 90s or 1500ms: Chaos Mesh's
// latency pattern takes no compound duration such as 1m30s.
func duration(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	for _, u := range []struct {
		d    time.Duration
		unit string
	}{{time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}, {time.Millisecond, "ms"}, {time.Microsecond, "us"}} {
		if d%u.d == 0 {
			return strconv.FormatInt(int64(d/u.d), 10) + u.unit
		}
	}
	return strconv.FormatInt(int64(d), 10) + "ns"
}

func containers(name string) []string {
	if name == "" {
		return nil // Chaos Mesh takes the first, as faultline does
	}
	return []string{name}
}

func sortedSet(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	out := slices.Clone(s)
	slices.Sort(out)
	return slices.Compact(out)
}
