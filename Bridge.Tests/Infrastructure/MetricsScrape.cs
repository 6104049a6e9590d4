using System.Globalization;
using System.Text.RegularExpressions;

namespace Bridge.Tests.Infrastructure;

/// <summary>Reads the worker's Prometheus text on <c>/metrics</c>.</summary>
internal static class MetricsScrape
{
    /// <summary>The sum of the series called <paramref name="name"/> whose labels contain <paramref name="labels"/> (e.g. <c>transport="sse"</c>).</summary>
    public static async Task<double> SumAsync(HttpClient http, string name, string labels = "")
    {
        var text = await http.GetStringAsync("/metrics");
        var total = 0.0;
        foreach (Match m in Regex.Matches(text, $@"^{Regex.Escape(name)}(\{{[^}}]*\}})? ([0-9.e+-]+)", RegexOptions.Multiline))
        {
            if (m.Groups[1].Value.Contains(labels, StringComparison.Ordinal))
            {
                total += double.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture);
            }
        }

        return total;
    }

    /// <summary>Every labelled series whose name starts with <paramref name="prefix"/>, with its labels.</summary>
    public static async Task<List<(string Series, List<(string Key, string Value)> Labels)>> SeriesAsync(HttpClient http, string prefix)
    {
        var text = await http.GetStringAsync("/metrics");
        return
        [
            .. Regex.Matches(text, $@"^{Regex.Escape(prefix)}\w*\{{([^}}]*)\}}", RegexOptions.Multiline).Select(line => (
                line.Value,
                Regex.Matches(line.Groups[1].Value, @"(\w+)=""([^""]*)""").Select(l => (l.Groups[1].Value, l.Groups[2].Value)).ToList())),
        ];
    }
}
