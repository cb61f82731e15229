package main

import (
	"fmt"
	"io"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
	"faultline.dev/faultline/experiments/schedule"
)

func newScheduleCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "schedule",
		Aliases: []string{"schedules"},
		Short:   "List, trigger, suspend and resume Schedules (experiments and gamedays on a cron)",
		Long: `A Schedule runs an experiment, or a gameday of several in order, on a cron
schedule with CronJob semantics. These commands act on Schedules already
in the cluster; create one with kubectl apply, and check it first with
faultline validate -f.`,
	}
	cmd.AddCommand(newScheduleListCommand(), newScheduleTriggerCommand(), newScheduleSuspendCommand(true), newScheduleSuspendCommand(false))
	return cmd
}

func newScheduleListCommand() *cobra.Command {
	var cf clusterFlags
	var all bool
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls", "get"},
		Short:   "List Schedules with their last run and verdict",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, ns, err := cf.client()
			if err != nil {
				return err
			}
			var list v1alpha1.ScheduleList
			opts := []client.ListOption{}
			if !all {
				opts = append(opts, client.InNamespace(ns))
			}
			if err := c.List(cmd.Context(), &list, opts...); err != nil {
				return err
			}
			printSchedules(cmd.OutOrStdout(), list.Items, time.Now())
			return nil
		},
	}
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "list in every namespace")
	cf.add(cmd)
	return cmd
}

func printSchedules(w io.Writer, items []v1alpha1.Schedule, now time.Time) {
	sort.Slice(items, func(i, j int) bool {
		if items[i].Namespace != items[j].Namespace {
			return items[i].Namespace < items[j].Namespace
		}
		return items[i].Name < items[j].Name
	})
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tNAME\tSCHEDULE\tTIMEZONE\tSUSPEND\tACTIVE\tLAST SCHEDULE\tLAST VERDICT\tAGE")
	ago := func(t *metav1.Time) string {
		if t == nil {
			return "<none>"
		}
		return now.Sub(t.Time).Round(time.Second).String() + " ago"
	}
	for _, s := range items {
		zone, verdict := s.Spec.TimeZone, "<none>"
		if zone == "" {
			zone = "UTC"
		}
		if len(s.Status.LastVerdicts) > 0 {
			verdict = string(s.Status.LastVerdicts[0].Verdict)
		}
		if c := invalidCondition(&s); c != "" {
			verdict = "Invalid: " + c
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\t%d\t%s\t%s\t%s\n", s.Namespace, s.Name, s.Spec.Schedule, zone, s.Spec.Suspend,
			s.Status.ActiveCount, ago(s.Status.LastScheduleTime), verdict, now.Sub(s.CreationTimestamp.Time).Round(time.Second))
	}
	_ = tw.Flush()
}

func invalidCondition(s *v1alpha1.Schedule) string {
	for _, c := range s.Status.Conditions {
		if c.Type == v1alpha1.ScheduleInvalid && c.Status == metav1.ConditionTrue {
			return c.Message
		}
	}
	return ""
}

func newScheduleTriggerCommand() *cobra.Command {
	var cf clusterFlags
	cmd := &cobra.Command{
		Use:   "trigger NAME",
		Short: "Start a run of a Schedule now, as kubectl create job --from=cronjob does",
		Long: `trigger starts a run now, whatever the schedule, the concurrency policy or
suspend say: its first Experiment is named for this minute (NAME-<unix
minutes>-manual, -STEP for a gameday), annotated as manual and owned by
the Schedule, whose controller then moves a gameday on step by step. One
trigger per minute: a second in the same minute is refused.`,
		Example: "  faultline schedule trigger nightly-partition -n chaos",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, err := cf.client()
			if err != nil {
				return err
			}
			var s v1alpha1.Schedule
			if err := c.Get(cmd.Context(), types.NamespacedName{Namespace: ns, Name: args[0]}, &s); err != nil {
				return err
			}
			exp := schedule.NewExperiment(&s, time.Now().Truncate(time.Second), true, schedule.FirstStep(&s))
			if err := c.Create(cmd.Context(), exp); err != nil {
				if apierrors.IsAlreadyExists(err) {
					return fmt.Errorf("a manual run of %s/%s for this minute exists already (%s)", ns, s.Name, exp.Name)
				}
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "schedule %s/%s: run %s started (experiment %s)\n", ns, s.Name, exp.Labels[v1alpha1.LabelScheduleRun], exp.Name)
			return nil
		},
	}
	cf.add(cmd)
	return cmd
}

func newScheduleSuspendCommand(suspend bool) *cobra.Command {
	var cf clusterFlags
	use, short, done := "suspend NAME", "Stop a Schedule's new runs (active runs go on)", "suspended"
	if !suspend {
		use, short, done = "resume NAME", "Let a suspended Schedule start runs again (only the most recent missed slot starts)", "resumed"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, err := cf.client()
			if err != nil {
				return err
			}
			s := &v1alpha1.Schedule{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: args[0]}}
			patch := []byte(fmt.Sprintf(`{"spec":{"suspend":%v}}`, suspend))
			if err := c.Patch(cmd.Context(), s, client.RawPatch(types.MergePatchType, patch)); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "schedule %s/%s: %s\n", ns, args[0], done)
			return nil
		},
	}
	cf.add(cmd)
	return cmd
}

func zoneOrUTC(z string) string {
	if z == "" {
		return "UTC"
	}
	return z
}
