# The Bridge worker image. Build from the repository root, with the name and tag the overlay's images: entry gives
# (docs/deployment.md, "The image"):
#   docker build -t registry.example.com/bridge/worker:0.1.0 .
# Multi-stage: the SDK restores and publishes; the runtime stage is the chiseled ASP.NET image (no shell, no
# package manager, runs as the non-root "app" user, UID 1654).

FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src
# Restore first, from the project files only, so the package layer is cached across source changes.
COPY global.json Directory.Build.props Directory.Build.targets Directory.Packages.props .editorconfig ./
COPY Bridge.Contracts/Bridge.Contracts.csproj Bridge.Contracts/
COPY Bridge.Worker/Bridge.Worker.csproj Bridge.Worker/
RUN dotnet restore Bridge.Worker/Bridge.Worker.csproj
COPY Bridge.Contracts/ Bridge.Contracts/
COPY Bridge.Worker/ Bridge.Worker/
RUN dotnet publish Bridge.Worker/Bridge.Worker.csproj -c Release --no-restore -o /app -p:UseAppHost=false

# Chiseled: no ICU or tzdata, which the worker does not need (InvariantGlobalization, UTC timestamps).
FROM mcr.microsoft.com/dotnet/aspnet:10.0-noble-chiseled AS runtime
WORKDIR /app
COPY --from=build /app ./
USER 1654
# Where the worker listens, on all interfaces (k8s/base/worker/worker.env says the same).
ENV ASPNETCORE_HTTP_PORTS=8080
EXPOSE 8080
ENTRYPOINT ["dotnet", "Bridge.Worker.dll"]
