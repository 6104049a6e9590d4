using Bridge.Cli;

return await Cli.RunAsync(args);
