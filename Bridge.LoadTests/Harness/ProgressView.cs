using System.Globalization;
using Spectre.Console;

namespace Bridge.LoadTests.Harness;

/// <summary>
/// Live progress while a scenario runs: a Spectre.Console table refreshed twice a second on a terminal, plain
/// lines every few seconds when stdout is redirected or CI=true (logs stay readable).
/// </summary>
internal static class ProgressView
{
    public static bool Live =>
        !Console.IsOutputRedirected && !string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    public static async Task RunAsync(ScenarioContext ctx, Func<Task> body)
    {
        if (Live)
        {
            await AnsiConsole.Live(Table(ctx, 0)).AutoClear(false).StartAsync(async live =>
            {
                var task = body();
                var last = ctx.Stats.Delivered;
                while (!task.IsCompleted)
                {
                    await Task.WhenAny(task, Task.Delay(500));
                    var now = ctx.Stats.Delivered;
                    live.UpdateTarget(Table(ctx, (now - last) * 2));
                    last = now;
                }

                await task;
            });
        }
        else
        {
            var task = body();
            var last = ctx.Stats.Delivered;
            while (!task.IsCompleted)
            {
                await Task.WhenAny(task, Task.Delay(3000));
                if (!task.IsCompleted)
                {
                    var now = ctx.Stats.Delivered;
                    Console.WriteLine(Line(ctx, (now - last) / 3));
                    last = now;
                }
            }

            await task;
        }
    }

    private static string Line(ScenarioContext ctx, long perSecond) =>
        string.Create(CultureInfo.InvariantCulture,
            $"[{ctx.Spec.Name} {ctx.Elapsed.TotalSeconds,5:F0}s {ctx.Phase}] conns {ctx.Connections:N0} sent {ctx.Stats.Sent:N0} delivered {ctx.Stats.Delivered:N0} ({perSecond:N0}/s) p99 {P99(ctx)} errors {ctx.Stats.ErrorCount:N0} {Procs(ctx)} {ctx.Status}");

    private static Table Table(ScenarioContext ctx, long perSecond)
    {
        var t = new Table().Border(TableBorder.Rounded).Title($"[bold]{Markup.Escape(ctx.Spec.Name)}[/]: {Markup.Escape(ctx.Spec.Description)}");
        t.AddColumn("phase").AddColumn("elapsed").AddColumn("conns").AddColumn("sent").AddColumn("delivered").AddColumn("delivered/s").AddColumn("p99").AddColumn("errors").AddColumn("processes");
        t.AddRow(
            Markup.Escape(ctx.Phase + (ctx.Status.Length > 0 ? ": " + ctx.Status : "")),
            $"{ctx.Elapsed.TotalSeconds:F0} s",
            ctx.Connections.ToString("N0", CultureInfo.InvariantCulture),
            ctx.Stats.Sent.ToString("N0", CultureInfo.InvariantCulture),
            ctx.Stats.Delivered.ToString("N0", CultureInfo.InvariantCulture),
            perSecond.ToString("N0", CultureInfo.InvariantCulture),
            P99(ctx),
            ctx.Stats.ErrorCount == 0 ? "0" : $"[red]{ctx.Stats.ErrorCount:N0}[/]",
            Markup.Escape(Procs(ctx)));
        return t;
    }

    private static string P99(ScenarioContext ctx) =>
        ctx.Stats.Latency.TotalCount == 0 ? "-" : string.Create(CultureInfo.InvariantCulture, $"{ctx.Stats.Latency.GetValueAtPercentile(99) / 1000.0:N1} ms");

    private static string Procs(ScenarioContext ctx) =>
        string.Join(' ', ctx.Processes.Processes.Select(p => string.Create(CultureInfo.InvariantCulture, $"{p.Name} {p.CurrentCpuPercent:F0}% {p.RssBytes / 1048576.0:F0}MB")));
}
