using System.Text.Json.Nodes;
using k8s;
using k8s.Models;

namespace Bridge.Tests.Deployment;

/// <summary>
/// What <c>kubectl apply -k</c> would send, for the subset of kustomize that k8s/ uses (kustomize is not installed
/// here): resources (files and directories), configMap/secret generators (envs, files, literals), generator
/// options, images, namespace, and inline JSON 6902 patches with add/replace. Every object is read with the
/// Kubernetes object model in strict mode, so an unknown field (a typo) fails; a kustomization field this
/// class does not implement fails too, instead of being silently ignored.
/// </summary>
internal static class Kustomize
{
    public sealed class Build
    {
        public List<IKubernetesObject<V1ObjectMeta>> Objects { get; } = [];

        /// <summary>Every file a kustomization in the build named (full paths).</summary>
        public HashSet<string> Files { get; } = new(StringComparer.Ordinal);

        /// <summary>Generator inputs that are not committed and were read from their <c>.example</c> instead.</summary>
        public List<string> ExamplesUsed { get; } = [];

        public IEnumerable<T> OfType<T>() => Objects.OfType<T>();

        public T Single<T>(string name) where T : IKubernetesObject<V1ObjectMeta> =>
            Objects.OfType<T>().SingleOrDefault(o => o.Metadata.Name == name) ??
            throw new Xunit.Sdk.XunitException($"no {typeof(T).Name} named {name} in the build");
    }

    // The fields of kustomization.yaml this emulation implements (strict: any other field fails the load).
    public sealed class KustomizationFile
    {
        public string? ApiVersion { get; set; }
        public string? Kind { get; set; }
        public string? Namespace { get; set; }
        public List<string> Resources { get; set; } = [];
        public List<Generator> ConfigMapGenerator { get; set; } = [];
        public List<Generator> SecretGenerator { get; set; } = [];
        public GeneratorOptions? GeneratorOptions { get; set; }
        public List<ImageEntry> Images { get; set; } = [];
        public List<PatchEntry> Patches { get; set; } = [];
    }

    public sealed class Generator
    {
        public string Name { get; set; } = "";
        public List<string> Envs { get; set; } = [];
        public List<string> Files { get; set; } = [];
        public List<string> Literals { get; set; } = [];
    }

    public sealed class GeneratorOptions
    {
        public bool DisableNameSuffixHash { get; set; }
        public Dictionary<string, string> Labels { get; set; } = [];
    }

    public sealed class ImageEntry
    {
        public string Name { get; set; } = "";
        public string? NewName { get; set; }
        public string? NewTag { get; set; }
        public string? Digest { get; set; }
    }

    public sealed class PatchEntry
    {
        public PatchTarget Target { get; set; } = new();
        public string Patch { get; set; } = "";
    }

    public sealed class PatchTarget
    {
        public string Kind { get; set; } = "";
        public string Name { get; set; } = "";
    }

    public sealed class PatchOp
    {
        public string Op { get; set; } = "";
        public string Path { get; set; } = "";
        public object? Value { get; set; }
    }

    public static Build Load(string directory)
    {
        var build = new Build();
        LoadInto(Path.GetFullPath(directory), build);
        return build;
    }

    public static KustomizationFile ReadKustomization(string directory)
    {
        var file = Path.Combine(directory, "kustomization.yaml");
        Assert.True(File.Exists(file), $"{file} is missing");
        return KubernetesYaml.Deserialize<KustomizationFile>(File.ReadAllText(file), strict: true);
    }

    private static void LoadInto(string directory, Build build)
    {
        var k = ReadKustomization(directory);
        build.Files.Add(Path.Combine(directory, "kustomization.yaml"));
        var own = new List<IKubernetesObject<V1ObjectMeta>>();
        foreach (var resource in k.Resources)
        {
            var path = Path.GetFullPath(Path.Combine(directory, resource));
            if (Directory.Exists(path))
            {
                var sub = new Build();
                LoadInto(path, sub);
                own.AddRange(sub.Objects);
                build.Files.UnionWith(sub.Files);
                build.ExamplesUsed.AddRange(sub.ExamplesUsed);
            }
            else
            {
                Assert.True(File.Exists(path), $"{directory}/kustomization.yaml lists {resource}, which does not exist");
                build.Files.Add(path);
                own.AddRange(KubernetesYaml.LoadAllFromString(File.ReadAllText(path), strict: true).Cast<IKubernetesObject<V1ObjectMeta>>());
            }
        }

        var labels = k.GeneratorOptions?.Labels ?? [];
        foreach (var g in k.ConfigMapGenerator)
        {
            own.Add(new V1ConfigMap
            {
                ApiVersion = "v1",
                Kind = "ConfigMap",
                Metadata = new V1ObjectMeta { Name = g.Name, Labels = labels.Count > 0 ? new Dictionary<string, string>(labels) : null },
                Data = GeneratorData(directory, g, build),
            });
        }

        foreach (var g in k.SecretGenerator)
        {
            own.Add(new V1Secret
            {
                ApiVersion = "v1",
                Kind = "Secret",
                Metadata = new V1ObjectMeta { Name = g.Name, Labels = labels.Count > 0 ? new Dictionary<string, string>(labels) : null },
                StringData = GeneratorData(directory, g, build),
            });
        }

        foreach (var image in k.Images)
        {
            foreach (var container in own.SelectMany(o => Containers(o)))
            {
                if (ImageName(container.Image) == image.Name)
                {
                    var name = image.NewName ?? image.Name;
                    container.Image = image.Digest is not null ? $"{name}@{image.Digest}"
                        : image.NewTag is not null ? $"{name}:{image.NewTag}"
                        : name + container.Image[image.Name.Length..];
                }
            }
        }

        foreach (var patch in k.Patches)
        {
            var index = own.FindIndex(o => o.Kind == patch.Target.Kind && o.Metadata.Name == patch.Target.Name);
            Assert.True(index >= 0, $"{directory}: patch target {patch.Target.Kind}/{patch.Target.Name} not found");
            var ops = KubernetesYaml.Deserialize<List<PatchOp>>(patch.Patch, strict: true);
            own[index] = ApplyJsonPatch(own[index], ops);
        }

        if (k.Namespace is not null)
        {
            foreach (var o in own.Where(o => o.Kind != "Namespace"))
            {
                o.Metadata.NamespaceProperty = k.Namespace;
            }
        }

        build.Objects.AddRange(own);
    }

    private static Dictionary<string, string> GeneratorData(string directory, Generator g, Build build)
    {
        var data = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var env in g.Envs)
        {
            var path = Committed(Path.Combine(directory, env), build);
            foreach (var line in File.ReadAllLines(path))
            {
                var trimmed = line.Trim();
                if (trimmed.Length == 0 || trimmed.StartsWith('#'))
                {
                    continue;
                }

                var eq = trimmed.IndexOf('=', StringComparison.Ordinal);
                Assert.True(eq > 0, $"{path}: '{line}' is not KEY=VALUE");
                data[trimmed[..eq]] = trimmed[(eq + 1)..];
            }
        }

        foreach (var file in g.Files)
        {
            var eq = file.IndexOf('=', StringComparison.Ordinal);
            var (key, relative) = eq > 0 ? (file[..eq], file[(eq + 1)..]) : (Path.GetFileName(file), file);
            data[key] = File.ReadAllText(Committed(Path.Combine(directory, relative), build));
        }

        foreach (var literal in g.Literals)
        {
            var eq = literal.IndexOf('=', StringComparison.Ordinal);
            data[literal[..eq]] = literal[(eq + 1)..];
        }

        return data;
    }

    /// <summary>A generator input; an operator's uncommitted file (auth.env) is read from its committed .example.</summary>
    private static string Committed(string path, Build build)
    {
        path = Path.GetFullPath(path);
        if (!File.Exists(path) && File.Exists(path + ".example"))
        {
            build.ExamplesUsed.Add(path);
            build.Files.Add(path + ".example");
            return path + ".example";
        }

        Assert.True(File.Exists(path), $"generator input {path} does not exist");
        build.Files.Add(path);
        return path;
    }

    private static IKubernetesObject<V1ObjectMeta> ApplyJsonPatch(IKubernetesObject<V1ObjectMeta> target, List<PatchOp> ops)
    {
        var root = JsonNode.Parse(KubernetesJson.Serialize(target))!;
        foreach (var op in ops)
        {
            Assert.True(op.Op is "replace" or "add", $"patch op '{op.Op}' is not implemented by this emulation");
            var tokens = op.Path.Split('/', StringSplitOptions.RemoveEmptyEntries).Select(t => t.Replace("~1", "/").Replace("~0", "~")).ToArray();
            var parent = root;
            foreach (var token in tokens[..^1])
            {
                parent = parent is JsonArray a ? a[int.Parse(token)]! : parent[token]!;
            }

            var value = JsonNode.Parse(KubernetesJson.Serialize(op.Value));
            var last = tokens[^1];
            if (parent is JsonArray array)
            {
                if (op.Op == "add")
                {
                    array.Insert(last == "-" ? array.Count : int.Parse(last), value);
                }
                else
                {
                    array[int.Parse(last)] = value;
                }
            }
            else
            {
                Assert.True(op.Op == "add" || parent[last] is not null, $"patch replaces {op.Path}, which does not exist");
                parent[last] = value;
            }
        }

        // JSON is YAML: read back with the same typed, strict loader.
        return KubernetesYaml.LoadAllFromString(root.ToJsonString(), strict: true).Cast<IKubernetesObject<V1ObjectMeta>>().Single();
    }

    public static IEnumerable<V1Container> Containers(IKubernetesObject<V1ObjectMeta> o) =>
        PodSpec(o) is { } spec ? spec.Containers.Concat(spec.InitContainers ?? []) : [];

    public static V1PodSpec? PodSpec(IKubernetesObject<V1ObjectMeta> o) => o switch
    {
        V1Deployment d => d.Spec.Template.Spec,
        V1StatefulSet s => s.Spec.Template.Spec,
        V1DaemonSet ds => ds.Spec.Template.Spec,
        V1Job j => j.Spec.Template.Spec,
        V1Pod p => p.Spec,
        _ => null,
    };

    public static IDictionary<string, string>? TemplateLabels(IKubernetesObject<V1ObjectMeta> o) => o switch
    {
        V1Deployment d => d.Spec.Template.Metadata.Labels,
        V1StatefulSet s => s.Spec.Template.Metadata.Labels,
        V1DaemonSet ds => ds.Spec.Template.Metadata.Labels,
        _ => null,
    };

    /// <summary>The image without its tag or digest (a registry port's colon is not a tag).</summary>
    public static string ImageName(string image)
    {
        var at = image.IndexOf('@', StringComparison.Ordinal);
        if (at >= 0)
        {
            image = image[..at];
        }

        var colon = image.LastIndexOf(':');
        return colon > image.LastIndexOf('/') ? image[..colon] : image;
    }
}
