package controller

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
)

// AgentIdentityReconciler gives each node's agent an identity of its own,
// since RBAC cannot tell apart the pods of one DaemonSet: a ServiceAccount,
// and a Role with the template ClusterRole's rules restricted by
// resourceNames to the node's one FaultAssignment, bound to it, all in the
// agents' namespace beside the FaultAssignments. The agent asks for that
// ServiceAccount's token, which the chart's admission policy grants only
// to the agent whose own token names that node.
//
// Roles, not ClusterRoles: the RBAC authorizer walks every
// ClusterRoleBinding for a request that no earlier binding allows, and
// 5,000 per-node ones slowed every such request of the cluster (p99 +182 %,
// experiments/fleet's BenchmarkAuthorizationWithNodeIdentities). A
// RoleBinding is walked only for requests in its own namespace.
//
// Every identity is owned by the template ClusterRole, which the chart
// installs: uninstalling it takes them all. A deleted node's goes at once.
type AgentIdentityReconciler struct {
	client.Client
	// Reader reads past the cache, whose informers hold only the
	// identities (by label), never the template.
	Reader client.Reader
	// Namespace holds the identities and the FaultAssignments, and nothing
	// else: the agents' shared account may ask for tokens there only.
	Namespace string
	// Role is the template ClusterRole (the agent's rules from its RBAC
	// markers), never bound itself.
	Role string
}

// Identities carry these labels; the controller changes or deletes no
// object without them (nor does the chart's admission policy let it).
const (
	labelManagedBy   = "app.kubernetes.io/managed-by"
	managedByControl = "faultline-controller"
)

// IdentityCache limits the controller's informers of ServiceAccounts,
// Roles and RoleBindings to the identities it made.
func IdentityCache(namespace string) map[client.Object]cache.ByObject {
	only := cache.ByObject{
		Label:      labels.SelectorFromSet(labels.Set{labelManagedBy: managedByControl}),
		Namespaces: map[string]cache.Config{namespace: {}},
	}
	return map[client.Object]cache.ByObject{&corev1.ServiceAccount{}: only, &rbacv1.Role{}: only, &rbacv1.RoleBinding{}: only}
}

// SetupWithManager watches Nodes coming and going (a node's status changes
// with every heartbeat and changes nothing here), and the identities
// themselves, so that one changed or deleted by hand is made again. A new
// template (helm upgrade) restarts the controller, which goes over every
// node (the chart's checksum annotation).
func (r *AgentIdentityReconciler) SetupWithManager(mgr ctrl.Manager) error {
	toNode := handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
		if n := o.GetLabels()[v1alpha1.LabelNode]; n != "" {
			return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: n}}}
		}
		return nil
	})
	return ctrl.NewControllerManagedBy(mgr).Named("agentidentity").
		For(&corev1.Node{}, builder.WithPredicates(predicate.Funcs{UpdateFunc: func(event.UpdateEvent) bool { return false }})).
		Watches(&corev1.ServiceAccount{}, toNode).
		Watches(&rbacv1.Role{}, toNode).
		Watches(&rbacv1.RoleBinding{}, toNode).
		Complete(r)
}

func (r *AgentIdentityReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	node := req.Name
	name := v1alpha1.AgentIdentity(node)
	var n corev1.Node
	err := r.Get(ctx, req.NamespacedName, &n)
	if apierrors.IsNotFound(err) || (err == nil && n.DeletionTimestamp != nil) {
		return ctrl.Result{}, r.remove(ctx, name)
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		log.FromContext(ctx).Error(nil, "no identity for this node's agent: the name is too long", "node", node, "name", name)
		return ctrl.Result{}, nil
	}
	var tmpl rbacv1.ClusterRole
	if err := r.Reader.Get(ctx, client.ObjectKey{Name: r.Role}, &tmpl); err != nil {
		return ctrl.Result{}, fmt.Errorf("--agent-role %s: %w", r.Role, err)
	}
	for _, obj := range AgentIdentityObjects(&tmpl, r.Namespace, node) {
		if err := r.ensure(ctx, obj); err != nil {
			return ctrl.Result{}, err
		}
	}
	return ctrl.Result{}, nil
}

// AgentIdentityObjects are node's agent identity in namespace, owned by the
// template ClusterRole tmpl: a Role, its RoleBinding and the ServiceAccount,
// in the order to make them (the ServiceAccount last: once it exists its
// agent gets a token, and the rights are there already).
func AgentIdentityObjects(tmpl *rbacv1.ClusterRole, namespace, node string) []client.Object {
	name := v1alpha1.AgentIdentity(node)
	meta := func() metav1.ObjectMeta {
		return metav1.ObjectMeta{
			Name: name, Namespace: namespace,
			Labels: map[string]string{v1alpha1.LabelNode: node, labelManagedBy: managedByControl},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "ClusterRole", Name: tmpl.Name, UID: tmpl.UID,
			}},
		}
	}
	return []client.Object{
		&rbacv1.Role{ObjectMeta: meta(), Rules: ownNodeRules(tmpl.Rules, node)},
		&rbacv1.RoleBinding{
			ObjectMeta: meta(),
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: namespace}},
		},
		&corev1.ServiceAccount{ObjectMeta: meta()},
	}
}

// ownNodeRules are the template's rules for node's agent: each one limited
// to the FaultAssignment named after the node.
func ownNodeRules(tmpl []rbacv1.PolicyRule, node string) []rbacv1.PolicyRule {
	out := make([]rbacv1.PolicyRule, 0, len(tmpl))
	for _, rule := range tmpl {
		rule = *rule.DeepCopy()
		rule.ResourceNames = []string{node}
		out = append(out, rule)
	}
	return out
}

// ensure creates obj, or brings an existing one's rules, subjects, labels
// and owners to what obj says. An object of that name that is not an
// identity this controller made is left alone, and said so.
func (r *AgentIdentityReconciler) ensure(ctx context.Context, obj client.Object) error {
	cur := obj.DeepCopyObject().(client.Object)
	err := r.Reader.Get(ctx, client.ObjectKeyFromObject(obj), cur)
	if apierrors.IsNotFound(err) {
		return client.IgnoreAlreadyExists(r.Create(ctx, obj))
	}
	if err != nil {
		return err
	}
	if cur.GetLabels()[labelManagedBy] != managedByControl {
		return fmt.Errorf("%T %s exists and is not an agent identity of faultline's (no label %s=%s): left alone; node %s's agent gets no identity until it is gone",
			obj, obj.GetName(), labelManagedBy, managedByControl, obj.GetLabels()[v1alpha1.LabelNode])
	}
	same := equality.Semantic.DeepEqual(cur.GetLabels(), obj.GetLabels()) && equality.Semantic.DeepEqual(cur.GetOwnerReferences(), obj.GetOwnerReferences())
	switch c := cur.(type) {
	case *rbacv1.Role:
		same = same && equality.Semantic.DeepEqual(c.Rules, obj.(*rbacv1.Role).Rules)
		c.Rules = obj.(*rbacv1.Role).Rules
	case *rbacv1.RoleBinding:
		if c.RoleRef != obj.(*rbacv1.RoleBinding).RoleRef {
			// A binding's role cannot change: make it again.
			pre := metav1.Preconditions{UID: &c.UID}
			if err := r.Delete(ctx, c, client.Preconditions(pre)); client.IgnoreNotFound(err) != nil {
				return err
			}
			return r.Create(ctx, obj)
		}
		same = same && equality.Semantic.DeepEqual(c.Subjects, obj.(*rbacv1.RoleBinding).Subjects)
		c.Subjects = obj.(*rbacv1.RoleBinding).Subjects
	}
	if same {
		return nil
	}
	cur.SetLabels(obj.GetLabels())
	cur.SetOwnerReferences(obj.GetOwnerReferences())
	return r.Update(ctx, cur)
}

// remove deletes a gone node's identity: only what this controller made.
func (r *AgentIdentityReconciler) remove(ctx context.Context, name string) error {
	for _, obj := range []client.Object{
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: r.Namespace}},
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: r.Namespace}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: r.Namespace}},
	} {
		err := r.Reader.Get(ctx, client.ObjectKeyFromObject(obj), obj)
		if apierrors.IsNotFound(err) || err == nil && obj.GetLabels()[labelManagedBy] != managedByControl {
			continue
		}
		if err != nil {
			return err
		}
		uid := obj.GetUID()
		if err := r.Delete(ctx, obj, client.Preconditions(metav1.Preconditions{UID: &uid})); client.IgnoreNotFound(err) != nil {
			return err
		}
	}
	return nil
}
