//go:build sandbox

package sandbox_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"faultline.dev/faultline/sandbox"
	"faultline.dev/faultline/sandbox/sandboxtest"
)

// ingressClient opens a fresh connection per request and never goes
// through a proxy of the environment.
var ingressClient = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}

func fetch(u string) (int, string, error) {
	resp, err := ingressClient.Get(u)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func TestIngressRoutesAnnotatedServicesAndReportsRealFailures(t *testing.T) {
	sandboxtest.Parallel(t, sandboxtest.Shared(sandboxtest.ControlPlane))
	env := sandboxtest.Get(t)
	ingress := env.State.IngressURL
	if ingress == "" {
		t.Fatalf("the shared sandbox %q runs without the ingress: bring it up with --ingress (make test does)", env.State.Name)
	}
	ctx := context.Background()
	const ns = "sandbox-ingress"
	if _, err := env.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })

	if code, body, err := fetch(ingress + "/healthz"); err != nil || code != http.StatusOK {
		t.Fatalf("GET %s/healthz = %d %q, %v; want 200", ingress, code, body, err)
	}

	labels := map[string]string{"app": "demo-app"}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "demo-app", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					NodeSelector: map[string]string{"faultline.dev/sandbox-node": "real"},
					Containers: []corev1.Container{{
						Name: "demo-app", Image: "faultline.local/demo-app:sandbox", ImagePullPolicy: corev1.PullNever,
						Env:   []corev1.EnvVar{{Name: "DEMO_DRAIN", Value: "1s"}},
						Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
						ReadinessProbe: &corev1.Probe{
							ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromString("http")}},
							PeriodSeconds: 1,
						},
					}},
				},
			},
		},
	}
	if _, err := env.Client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "demo-app", Namespace: ns, Annotations: map[string]string{sandbox.IngressPathAnnotation: "/" + ns}},
		Spec: corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{
			{Name: "http", Port: 80, TargetPort: intstr.FromString("http")},
		}},
	}
	if _, err := env.Client.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// 1. The app answers through the ingress, from both ready endpoints,
	// with the prefix stripped (the app serves / and /status/CODE).
	base := ingress + "/" + ns + "/"
	var (
		code int
		body string
		err  error
	)
	sandboxtest.WaitFor(t, 2*time.Minute, "the demo app to answer 200 through "+base, func() bool {
		code, body, err = fetch(base)
		return err == nil && code == http.StatusOK && strings.HasPrefix(body, "hello from demo-app-")
	})
	hosts := map[string]bool{}
	sandboxtest.WaitFor(t, 30*time.Second, "both replicas to answer through the ingress", func() bool {
		if code, body, err = fetch(base); err == nil && code == http.StatusOK {
			hosts[strings.Fields(body)[2]] = true
		}
		return len(hosts) == 2
	})

	// 2. The app's own 502 passes through as it is: no body, not nginx's page.
	if code, body, err = fetch(base + "status/502"); err != nil || code != http.StatusBadGateway || strings.Contains(body, "nginx") {
		t.Errorf("GET %sstatus/502 = %d %q, %v; want the app's bare 502", base, code, body, err)
	}

	// 3. An endpoint that refuses: a Service whose EndpointSlice is written
	// by hand, pointing at a demo pod's IP on a port nothing listens on.
	pods, err := env.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=demo-app"})
	if err != nil || len(pods.Items) == 0 || pods.Items[0].Status.PodIP == "" {
		t.Fatalf("no demo pod with an IP: %v", err)
	}
	podIP := pods.Items[0].Status.PodIP
	refused := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "refused", Namespace: ns, Annotations: map[string]string{sandbox.IngressPathAnnotation: "/" + ns + "-refused"}},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(9)}}},
	}
	if _, err := env.Client.CoreV1().Services(ns).Create(ctx, refused, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	handSlice := func(name string, port int32) {
		t.Helper()
		sl := &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{
				discoveryv1.LabelServiceName: "refused", discoveryv1.LabelManagedBy: "sandbox-ingress-test",
			}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To(port), Protocol: ptr.To(corev1.ProtocolTCP)}},
			Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{podIP}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
		}
		if _, err := env.Client.DiscoveryV1().EndpointSlices(ns).Create(ctx, sl, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	handSlice("refused-9", 9)
	refusedURL := ingress + "/" + ns + "-refused/"
	sandboxtest.WaitFor(t, 30*time.Second, "nginx's own 502 from "+refusedURL+" ("+podIP+":9 refuses)", func() bool {
		code, body, err = fetch(refusedURL)
		return err == nil && code == http.StatusBadGateway && strings.Contains(body, "nginx")
	})

	// With a healthy endpoint beside the refusing one, requests still fail
	// on the refusing one: no retry on the peer hides it.
	handSlice("refused-8080", 8080)
	var seen map[int]int
	sandboxtest.WaitFor(t, 30*time.Second, "both 200s and 502s from a Service with a healthy and a refusing endpoint", func() bool {
		seen = map[int]int{}
		for range 20 {
			if code, _, err := fetch(refusedURL); err == nil {
				seen[code]++
			}
		}
		return seen[http.StatusOK] > 0 && seen[http.StatusBadGateway] > 0
	})
	t.Logf("20 requests to a healthy and a refusing endpoint: %v", seen)

	// 4. A Service that is gone takes its route with it.
	if err := env.Client.CoreV1().Services(ns).Delete(ctx, "refused", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	sandboxtest.WaitFor(t, 30*time.Second, refusedURL+" to answer 404 once its Service is deleted", func() bool {
		code, _, err = fetch(refusedURL)
		return err == nil && code == http.StatusNotFound
	})

	// 5. No ready endpoint: 503, as ingress controllers answer.
	scale, err := env.Client.AppsV1().Deployments(ns).GetScale(ctx, "demo-app", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	scale.Spec.Replicas = 0
	if _, err := env.Client.AppsV1().Deployments(ns).UpdateScale(ctx, "demo-app", scale, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	sandboxtest.WaitFor(t, time.Minute, base+" to answer 503 with the Deployment scaled to 0", func() bool {
		code, body, err = fetch(base)
		return err == nil && code == http.StatusServiceUnavailable && strings.Contains(body, "no ready endpoints for Service "+ns+"/demo-app")
	})
}

// nginx writes its process title over its environment, so its workers
// carry no sandbox marker; killed with SIGKILL, its master leaves them
// running, still listening. down must remove them all the same.
func TestDownRemovesNginxWorkersWhoseMasterWasKilled(t *testing.T) {
	sandboxtest.RequireRoot(t)
	sandboxtest.Hold(t) // the machine, shared
	c := smallConfig(t, "ingress-orphans")
	c.SharedKwokNodes, c.IsolatedKwokNodes, c.RealNodes, c.Ingress = 0, 0, 0, true
	_ = sandbox.Down(c, nil)
	before := readMachine(t)
	st, err := sandbox.Up(context.Background(), c, sandbox.NewProgress(os.Stderr), false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sandbox.Down(c, nil) })
	master := st.Components[sandbox.IngressComponent].PID
	workers := sessionOf(master)
	if len(workers) == 0 {
		t.Fatalf("nginx (pid %d) has no workers in its session", master)
	}
	for _, w := range workers {
		if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", w)); strings.Contains(string(b), "FAULTLINE_SANDBOX_DIR") {
			t.Logf("worker %d carries the sandbox's marker after all", w)
		}
	}
	index, pids := recordedPIDs(t, c)
	if err := sandbox.Kill(c, sandbox.IngressComponent, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if left := sessionOf(master); len(left) == 0 {
		t.Fatal("nginx's workers died with their master: this test would prove nothing")
	}
	if err := sandbox.Down(c, sandbox.NewProgress(os.Stderr)); err != nil {
		t.Fatal(err)
	}
	assertNothingLeft(t, before, c, index, pids)
}
