package charts

import "strings"

// Tenancy, as templates/tenancy.yaml grants and checks it: the author's own
// rights decide what an experiment may touch. The permission is faultline's
// own verb on resources that are never served; RBAC grants and checks it
// all the same, and the admission policy asks the API server's authorizer
// about the requesting user.
const (
	// TenancyTemplate is the chart's file of the roles and the policy.
	TenancyTemplate = "faultline/templates/tenancy.yaml"
	// TenancyPolicy names the ValidatingAdmissionPolicy and its binding.
	TenancyPolicy = "faultline-tenancy"

	// PermissionGroup and VerbInject are the permission: inject on
	// ResourceNodes cluster-wide for a node fault, on ResourcePods in a
	// namespace for pod targets there from another namespace.
	PermissionGroup = "faultline.dev"
	VerbInject      = "inject"
	ResourceNodes   = "nodes"
	ResourcePods    = "pods"

	// RoleViewer reads experiments, schedules and reports; aggregated to view.
	RoleViewer = "faultline-viewer"
	// RoleExperimenter, bound in a namespace, runs experiments there and
	// lets its holder target that namespace's pods; aggregated to edit.
	RoleExperimenter = "faultline-experimenter"
	// RoleClusterExperimenter, bound cluster-wide, adds node faults.
	RoleClusterExperimenter = "faultline-cluster-experimenter"
)

// Source is the part of the rendered manifest that template made (a path
// such as TenancyTemplate), as helm template --show-only prints it.
func (r *Rendered) Source(template string) string {
	var out []string
	for _, doc := range strings.Split(r.Manifest, "\n---\n") {
		doc = strings.TrimPrefix(doc, "---\n")
		if strings.HasPrefix(doc, "# Source: "+template+"\n") {
			out = append(out, doc)
		}
	}
	return strings.Join(out, "\n---\n")
}
