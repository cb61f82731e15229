package nodeagent

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/oauth2"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/transport"
	"k8s.io/utils/ptr"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
)

// Identity turns the DaemonSet's shared service account (which may do
// nothing but ask for a token of its own node's ServiceAccount) into that
// node's identity, which RBAC lets read this node's FaultAssignment and no
// other. Tokens last an hour, are asked again before they expire, and are
// bound to the Node object: they stop working when the node is deleted.
// (A token bound to the agent's pod must be of the pod's own account.)
func Identity(bootstrap *rest.Config, namespace, node string) (*rest.Config, error) {
	name := v1alpha1.AgentIdentity(node)
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return nil, fmt.Errorf("--node-identity: node %q makes no valid ServiceAccount name %q: %v", node, name, errs)
	}
	cs, err := kubernetes.NewForConfig(bootstrap)
	if err != nil {
		return nil, err
	}
	ts := &tokenSource{sas: cs.CoreV1().ServiceAccounts(namespace), namespace: namespace, name: name, node: node}
	// The first token now: a clear error at start beats a 401 in a watch.
	first, err := ts.Token()
	if err != nil {
		return nil, err
	}
	ts.next = first
	cfg := rest.AnonymousClientConfig(bootstrap)
	// Resettable: a 401 asks for a new token at once (the ServiceAccount
	// or the Node was made again, which ends the tokens of the old ones).
	cfg.WrapTransport = transport.ResettableTokenSourceWrapTransport(transport.NewCachedTokenSource(ts))
	return cfg, nil
}

type tokenSource struct {
	sas                   corev1client.ServiceAccountInterface
	namespace, name, node string
	// next is a token already asked for, given out once.
	mu   sync.Mutex
	next *oauth2.Token
}

func (t *tokenSource) Token() (*oauth2.Token, error) {
	t.mu.Lock()
	next := t.next
	t.next = nil
	t.mu.Unlock()
	if next != nil {
		return next, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr, err := t.sas.CreateToken(ctx, t.name, &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: ptr.To[int64](3600),
		BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Node", APIVersion: "v1", Name: t.node},
	}}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("token of this node's ServiceAccount %s/%s (made by the controller for each node): %w", t.namespace, t.name, err)
	}
	return &oauth2.Token{AccessToken: tr.Status.Token, TokenType: "Bearer", Expiry: tr.Status.ExpirationTimestamp.Time}, nil
}
