using Bridge.LoadTests;

return await LoadTestsMain.RunAsync(args, Bridge.LoadTests.Harness.Args.DefaultCommand, CancellationToken.None);
