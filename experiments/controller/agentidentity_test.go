package controller

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

func agentTemplate(verbs ...string) *rbacv1.ClusterRole {
	return &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "faultline-agent", UID: "tmpl-uid"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{"faultline.dev"}, Resources: []string{"faultassignments"}, Verbs: verbs},
		{APIGroups: []string{"faultline.dev"}, Resources: []string{"faultassignments/status"}, Verbs: []string{"get", "update", "patch"}},
	}}
}

// identityMeta is an identity's metadata as the controller makes it;
// foreign leaves the labels off.
func identityMeta(name, namespace string, foreign bool) metav1.ObjectMeta {
	m := metav1.ObjectMeta{Name: name, Namespace: namespace, UID: types.UID("uid-" + name)}
	if !foreign {
		m.Labels = map[string]string{labelManagedBy: managedByControl, "faultline.dev/node": "n1"}
	}
	return m
}

func TestEachNodesAgentGetsAnIdentityForItsOwnAssignmentOnly(t *testing.T) {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}
	ours := func(foreign bool) []client.Object {
		return []client.Object{
			&rbacv1.Role{ObjectMeta: identityMeta("faultline-agent-n1", "faultline-agents", foreign)},
			&rbacv1.RoleBinding{ObjectMeta: identityMeta("faultline-agent-n1", "faultline-agents", foreign), RoleRef: rbacv1.RoleRef{Kind: "ClusterRole", Name: "cluster-admin"}},
			&corev1.ServiceAccount{ObjectMeta: identityMeta("faultline-agent-n1", "faultline-agents", foreign)},
		}
	}
	tests := map[string]struct {
		objects   []client.Object
		wantVerbs []string // of the first rule; nil: no identity
		wantErr   string
		// kept: the objects are left as they were (someone else's)
		kept bool
	}{
		"a node gets a ServiceAccount and a Role of the template's rules, for its assignment only, and no cluster-wide binding": {
			objects: []client.Object{node, agentTemplate("get", "list", "watch")}, wantVerbs: []string{"get", "list", "watch"},
		},
		"an identity changed by hand (its rules, its binding's role) is made right again": {
			objects:   append([]client.Object{node, agentTemplate("get")}, ours(false)...),
			wantVerbs: []string{"get"},
		},
		"objects of an identity's name that faultline did not make are left alone, and said so": {
			objects: append([]client.Object{node, agentTemplate("get")}, ours(true)...),
			wantErr: "is not an agent identity of faultline's", kept: true,
		},
		"a node that is gone takes its identity with it": {
			objects: append([]client.Object{agentTemplate("get")}, ours(false)...),
		},
		"a gone node's name on objects faultline did not make deletes nothing": {
			objects: append([]client.Object{agentTemplate("get")}, ours(true)...), kept: true,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c := fake.NewClientBuilder().WithScheme(clientgoscheme.Scheme).WithObjects(tc.objects...).Build()
			r := &AgentIdentityReconciler{Client: c, Reader: c, Namespace: "faultline-agents", Role: "faultline-agent"}
			ctx := context.Background()
			_, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: types.NamespacedName{Name: "n1"}})
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
			var sa corev1.ServiceAccount
			var role rbacv1.Role
			var binding rbacv1.RoleBinding
			key := client.ObjectKey{Namespace: "faultline-agents", Name: "faultline-agent-n1"}
			errs := []error{c.Get(ctx, key, &sa), c.Get(ctx, key, &role), c.Get(ctx, key, &binding)}
			var cluster rbacv1.ClusterRoleBindingList
			if err := c.List(ctx, &cluster); err != nil || len(cluster.Items) != 0 {
				t.Errorf("cluster-wide bindings %v (%v), want none: the authorizer walks them for every request", cluster.Items, err)
			}
			if tc.kept {
				for _, err := range errs {
					if err != nil {
						t.Fatal(err)
					}
				}
				if role.Labels != nil || len(role.Rules) != 0 || binding.RoleRef.Name != "cluster-admin" {
					t.Errorf("someone else's objects were changed: role %v %v, binding to %s", role.Labels, role.Rules, binding.RoleRef.Name)
				}
				return
			}
			if tc.wantVerbs == nil {
				for _, err := range errs {
					if !apierrors.IsNotFound(err) {
						t.Errorf("identity left after its node went: %v", err)
					}
				}
				return
			}
			for _, err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			if len(role.Rules) != 2 {
				t.Fatalf("rules %v, want the template's two", role.Rules)
			}
			for _, rule := range role.Rules {
				if len(rule.ResourceNames) != 1 || rule.ResourceNames[0] != "n1" {
					t.Errorf("rule %v: want it limited to the FaultAssignment n1", rule)
				}
			}
			if got := role.Rules[0].Verbs; len(got) != len(tc.wantVerbs) || got[0] != tc.wantVerbs[0] {
				t.Errorf("verbs %v, want %v", got, tc.wantVerbs)
			}
			if binding.RoleRef.Kind != "Role" || binding.RoleRef.Name != "faultline-agent-n1" || len(binding.Subjects) != 1 || binding.Subjects[0].Name != sa.Name || binding.Subjects[0].Namespace != "faultline-agents" {
				t.Errorf("binding %v -> %v, want the node's role to its ServiceAccount", binding.Subjects, binding.RoleRef)
			}
			for _, o := range []client.Object{&sa, &role, &binding} {
				if refs := o.GetOwnerReferences(); len(refs) != 1 || refs[0].UID != "tmpl-uid" || refs[0].Kind != "ClusterRole" {
					t.Errorf("%T owners %v, want the template ClusterRole, so that uninstalling takes it", o, refs)
				}
			}
		})
	}
}
