namespace Bridge.LoadTests.Harness;

/// <summary>
/// A scenario as code: what it loads the target with, for how long, and what it must achieve. Everything is
/// bounded: <see cref="MaxTime"/> cancels a scenario that overruns, whatever it is doing.
/// </summary>
internal sealed record ScenarioSpec(string Name, string Description)
{
    /// <summary>Load before measuring starts; messages sent in it are not counted.</summary>
    public TimeSpan WarmUp { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>The measured window.</summary>
    public TimeSpan Duration { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>How long delivery may trail the end of publishing before the rest counts as lost.</summary>
    public TimeSpan Drain { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>Hard limit for setup, load, drain and teardown together.</summary>
    public TimeSpan MaxTime { get; init; } = TimeSpan.FromMinutes(3);

    public IReadOnlyList<LoadSimulation> Load { get; init; } = [];

    public IReadOnlyList<Threshold> Thresholds { get; init; } = [];

    /// <summary>The command line that reproduces this scenario alone.</summary>
    public string Command { get; init; } = "";

    public T? Find<T>() where T : LoadSimulation => Load.OfType<T>().FirstOrDefault();
}

/// <summary>A runnable scenario: its spec plus the code that sets up the target and drives the load.</summary>
internal interface IScenario
{
    ScenarioSpec Spec { get; }

    Task RunAsync(ScenarioContext context);
}
