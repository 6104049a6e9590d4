using System.Text;
using Bridge.Worker.Hosting;
using Mono.Cecil;

namespace Bridge.Tests.Unit;

/// <summary>
/// The worker's namespaces are layers (docs/architecture.md): a namespace may use the ones below it, never one that
/// uses it back, directly or through others. Read from the compiled assembly, so every use counts: signatures,
/// fields, base types, attributes, and each type, method and field an instruction names (lambdas and async state
/// machines count for the type that declares them).
/// </summary>
public sealed class NamespaceLayerTests
{
    private const string Root = "Bridge.Worker.";

    [Fact]
    public void No_namespace_of_the_worker_uses_a_namespace_that_uses_it_back()
    {
        var uses = NamespaceUses();
        var circles = StronglyConnected(uses).Where(c => c.Count > 1).ToList();

        Assert.True(circles.Count == 0, Describe(circles, uses));
    }

    [Fact]
    public void The_core_namespace_uses_no_other_namespace_of_the_worker()
    {
        var uses = NamespaceUses();

        Assert.True(uses.ContainsKey("Core"), "the worker has no Bridge.Worker.Core namespace");
        Assert.Empty(uses["Core"].Keys);
    }

    /// <summary>For each namespace (without the <c>Bridge.Worker.</c> prefix): the namespaces it uses, each with one example use.</summary>
    private static Dictionary<string, Dictionary<string, string>> NamespaceUses()
    {
        using var module = ModuleDefinition.ReadModule(typeof(BridgeApp).Assembly.Location);
        var uses = new Dictionary<string, Dictionary<string, string>>(StringComparer.Ordinal);
        foreach (var type in module.GetTypes())
        {
            if (NamespaceOf(type) is not { } from)
            {
                continue;
            }

            var edges = uses.TryGetValue(from, out var e) ? e : uses[from] = new(StringComparer.Ordinal);
            void Use(TypeReference? used, string where)
            {
                foreach (var t in Parts(used))
                {
                    if (NamespaceOf(t) is { } to && to != from)
                    {
                        edges.TryAdd(to, $"{where} uses {t.FullName}");
                    }
                }
            }

            var name = Outermost(type).FullName;
            Use(type.BaseType, name);
            foreach (var i in type.Interfaces)
            {
                Use(i.InterfaceType, name);
            }

            foreach (var a in type.CustomAttributes)
            {
                Use(a.AttributeType, name);
            }

            foreach (var f in type.Fields)
            {
                Use(f.FieldType, $"{name}.{f.Name}");
            }

            foreach (var p in type.Properties)
            {
                Use(p.PropertyType, $"{name}.{p.Name}");
            }

            foreach (var ev in type.Events)
            {
                Use(ev.EventType, $"{name}.{ev.Name}");
            }

            foreach (var m in type.Methods)
            {
                var where = $"{name}.{m.Name}";
                Use(m.ReturnType, where);
                foreach (var p in m.Parameters)
                {
                    Use(p.ParameterType, where);
                }

                foreach (var a in m.CustomAttributes)
                {
                    Use(a.AttributeType, where);
                }

                if (!m.HasBody)
                {
                    continue;
                }

                foreach (var v in m.Body.Variables)
                {
                    Use(v.VariableType, where);
                }

                foreach (var instruction in m.Body.Instructions)
                {
                    switch (instruction.Operand)
                    {
                        case TypeReference t:
                            Use(t, where);
                            break;
                        case MethodReference mr:
                            Use(mr.DeclaringType, where);
                            Use(mr.ReturnType, where);
                            foreach (var p in mr.Parameters)
                            {
                                Use(p.ParameterType, where);
                            }

                            if (mr is GenericInstanceMethod gm)
                            {
                                foreach (var g in gm.GenericArguments)
                                {
                                    Use(g, where);
                                }
                            }

                            break;
                        case FieldReference fr:
                            Use(fr.DeclaringType, where);
                            Use(fr.FieldType, where);
                            break;
                    }
                }
            }
        }

        return uses;
    }

    /// <summary>The named types inside a type reference: the element of an array, the arguments of a generic.</summary>
    private static IEnumerable<TypeReference> Parts(TypeReference? type)
    {
        switch (type)
        {
            case null or GenericParameter:
                yield break;
            case GenericInstanceType generic:
                foreach (var t in Parts(generic.ElementType).Concat(generic.GenericArguments.SelectMany(Parts)))
                {
                    yield return t;
                }

                break;
            case TypeSpecification spec: // arrays, by-ref, pointers, modifiers
                foreach (var t in Parts(spec.ElementType))
                {
                    yield return t;
                }

                break;
            default:
                yield return type;
                break;
        }
    }

    private static TypeReference Outermost(TypeReference type)
    {
        while (type.DeclaringType is { } outer)
        {
            type = outer;
        }

        return type;
    }

    /// <summary>The worker namespace of a type declared in the worker (nested types count for their outermost type); null for any other.</summary>
    private static string? NamespaceOf(TypeReference type)
    {
        var ns = Outermost(type).Namespace;
        return ns.StartsWith(Root, StringComparison.Ordinal) ? ns[Root.Length..] : null;
    }

    /// <summary>Tarjan's strongly connected components: each circle of namespaces is one component of more than one.</summary>
    private static List<List<string>> StronglyConnected(Dictionary<string, Dictionary<string, string>> uses)
    {
        var index = new Dictionary<string, int>(StringComparer.Ordinal);
        var low = new Dictionary<string, int>(StringComparer.Ordinal);
        var stack = new Stack<string>();
        var onStack = new HashSet<string>(StringComparer.Ordinal);
        var components = new List<List<string>>();

        void Visit(string node)
        {
            index[node] = low[node] = index.Count;
            stack.Push(node);
            onStack.Add(node);
            foreach (var next in uses.TryGetValue(node, out var e) ? e.Keys : Enumerable.Empty<string>())
            {
                if (!index.TryGetValue(next, out var seen))
                {
                    Visit(next);
                    low[node] = Math.Min(low[node], low[next]);
                }
                else if (onStack.Contains(next))
                {
                    low[node] = Math.Min(low[node], seen);
                }
            }

            if (low[node] == index[node])
            {
                var component = new List<string>();
                string member;
                do
                {
                    member = stack.Pop();
                    onStack.Remove(member);
                    component.Add(member);
                }
                while (member != node);
                components.Add(component);
            }
        }

        foreach (var node in uses.Keys.Order(StringComparer.Ordinal))
        {
            if (!index.ContainsKey(node))
            {
                Visit(node);
            }
        }

        return components;
    }

    private static string Describe(List<List<string>> circles, Dictionary<string, Dictionary<string, string>> uses)
    {
        var text = new StringBuilder("namespaces that use each other (directly or through others):\n");
        foreach (var circle in circles)
        {
            var members = circle.ToHashSet(StringComparer.Ordinal);
            text.Append("- ").AppendJoin(", ", circle.Order(StringComparer.Ordinal)).Append('\n');
            foreach (var from in circle.Order(StringComparer.Ordinal))
            {
                foreach (var (to, example) in uses[from].Where(e => members.Contains(e.Key)).OrderBy(e => e.Key, StringComparer.Ordinal))
                {
                    text.Append("    ").Append(from).Append(" -> ").Append(to).Append(": ").Append(example).Append('\n');
                }
            }
        }

        return text.ToString();
    }
}
