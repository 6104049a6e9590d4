using Bridge.Worker.Hosting;

return await WorkerStartup.RunAsync(args);
