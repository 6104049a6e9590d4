using Bridge.Worker.Hosting;

await BridgeApp.Build(args).RunAsync();
