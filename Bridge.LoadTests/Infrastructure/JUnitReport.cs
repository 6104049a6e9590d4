using System.Globalization;
using System.Text;
using System.Xml;
using System.Xml.Linq;

namespace Bridge.LoadTests.Infrastructure;

/// <summary>
/// The reports as JUnit XML, the format CI systems show as test results (GitHub Actions through a test-report
/// action, GitLab's <c>artifacts:reports:junit</c>, Jenkins, Azure Pipelines): one <c>testsuite</c> per scenario,
/// one <c>testcase</c> per check (its thresholds, and "scenario completed"), a <c>failure</c> for each that did not
/// hold, with the measured value; the scenario's metrics as <c>properties</c> and its Markdown as <c>system-out</c>.
/// </summary>
internal static class JUnitReport
{
    public static XDocument Build(string name, IReadOnlyList<Report> reports)
    {
        static string N(double v) => v.ToString("0.###", CultureInfo.InvariantCulture);
        var suites = new XElement("testsuites",
            new XAttribute("name", "bridge-load: " + name),
            new XAttribute("tests", reports.Sum(r => r.Checks.Count)),
            new XAttribute("failures", reports.Sum(r => r.Checks.Count(c => !c.Passed))),
            new XAttribute("errors", 0),
            new XAttribute("time", N(reports.Sum(r => r.Elapsed.TotalSeconds))));
        foreach (var r in reports)
        {
            var suite = new XElement("testsuite",
                new XAttribute("name", r.Scenario),
                new XAttribute("tests", r.Checks.Count),
                new XAttribute("failures", r.Checks.Count(c => !c.Passed)),
                new XAttribute("errors", 0),
                new XAttribute("skipped", 0),
                new XAttribute("time", N(r.Elapsed.TotalSeconds)),
                new XAttribute("timestamp", DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ss", CultureInfo.InvariantCulture)),
                new XElement("properties",
                    new XElement("property", new XAttribute("name", "command"), new XAttribute("value", r.Command)),
                    r.Metrics.OrderBy(m => m.Key, StringComparer.Ordinal)
                        .Select(m => new XElement("property", new XAttribute("name", m.Key), new XAttribute("value", N(m.Value))))));
            foreach (var (check, passed, detail) in r.Checks)
            {
                var testcase = new XElement("testcase",
                    new XAttribute("classname", "bridge.load." + r.Scenario),
                    new XAttribute("name", check),
                    new XAttribute("time", 0));
                if (!passed)
                {
                    testcase.Add(new XElement("failure",
                        new XAttribute("message", $"{check}: measured {detail}"),
                        new XAttribute("type", "threshold"),
                        $"{check} did not hold: measured {detail}. Command: {r.Command}"));
                }

                suite.Add(testcase);
            }

            suite.Add(new XElement("system-out", r.ToMarkdown()));
            suites.Add(suite);
        }

        return new XDocument(new XDeclaration("1.0", "utf-8", null), suites);
    }

    /// <summary>Writes the file as UTF-8 without a byte-order mark (some CI parsers stumble on one).</summary>
    public static void Write(string path, string name, IReadOnlyList<Report> reports)
    {
        using var writer = XmlWriter.Create(path, new XmlWriterSettings { Encoding = new UTF8Encoding(false), Indent = true });
        Build(name, reports).Save(writer);
    }
}
