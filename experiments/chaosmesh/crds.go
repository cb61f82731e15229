package chaosmesh

import (
	"fmt"
	"strings"

	cm "github.com/chaos-mesh/chaos-mesh/api/v1alpha1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
)

// kinds are the Chaos Mesh kinds Object makes, with their resources.
var kinds = []struct{ kind, resource string }{
	{cm.KindNetworkChaos, "networkchaos"},
	{cm.KindIOChaos, "iochaos"},
	{cm.KindStressChaos, "stresschaos"},
	{cm.KindPodChaos, "podchaos"},
}

// Kinds are the Chaos Mesh kinds that Object makes: the controller
// reads, creates and deletes them (never watches: their CRDs may be
// absent), and its RBAC must allow it.
func Kinds() []schema.GroupVersionKind {
	out := make([]schema.GroupVersionKind, len(kinds))
	for i, k := range kinds {
		out[i] = cm.SchemeGroupVersion.WithKind(k.kind)
	}
	return out
}

// CRDs are the names of the CustomResourceDefinitions of Kinds, such as
// networkchaos.chaos-mesh.org.
func CRDs() []string {
	out := make([]string, len(kinds))
	for i, k := range kinds {
		out[i] = k.resource + "." + cm.SchemeGroupVersion.Group
	}
	return out
}

// MissingCRDs are the CRDs of Kinds that the API server does not serve,
// in the order of Kinds; none when Chaos Mesh is installed.
func MissingCRDs(disc discovery.DiscoveryInterface) ([]string, error) {
	served := map[string]bool{}
	list, err := disc.ServerResourcesForGroupVersion(cm.SchemeGroupVersion.String())
	switch {
	case apierrors.IsNotFound(err):
		// No Chaos Mesh kind at all: the group version is not served.
	case err != nil:
		return nil, fmt.Errorf("discovering %s: %w", cm.SchemeGroupVersion, err)
	default:
		for _, r := range list.APIResources {
			served[r.Kind] = true
		}
	}
	var missing []string
	for i, k := range kinds {
		if !served[k.kind] {
			missing = append(missing, CRDs()[i])
		}
	}
	return missing, nil
}

// NotInstalledError says that engine chaos-mesh cannot run here.
type NotInstalledError struct {
	// CRDs missing, such as networkchaos.chaos-mesh.org.
	CRDs []string
}

// NotInstalled is the error for the missing CRDs, or nil when none is.
func NotInstalled(missing []string) error {
	if len(missing) == 0 {
		return nil
	}
	return &NotInstalledError{CRDs: missing}
}

func (e *NotInstalledError) Error() string {
	return fmt.Sprintf("spec.engine: chaos-mesh needs Chaos Mesh's CRDs (%s) and they are not installed; install Chaos Mesh or use engine: faultline", strings.Join(e.CRDs, ", "))
}
