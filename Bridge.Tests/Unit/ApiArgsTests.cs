using System.Text;
using Bridge.Contracts;
using Bridge.Worker.Backend;

namespace Bridge.Tests.Unit;

/// <summary>The backend API's edge: what a body must be before any field is read.</summary>
public sealed class ApiArgsTests
{
    [Theory]
    [InlineData("""{"from":"\ud800"}""")]
    [InlineData("""{"payload":{"x":"a\udc00b"}}""")]
    [InlineData("""{"\udc00":1}""")]
    public void A_body_with_a_lone_surrogate_escape_anywhere_is_refused_as_bad_frame(string json)
    {
        var refused = Assert.Throws<ApiException>(() => ApiArgs.Parse(Encoding.UTF8.GetBytes(json), Bridge.Worker.Core.WireFormat.Json).Dispose());
        Assert.Equal((400, ErrorCodes.BadFrame), (refused.Status, refused.Code));
    }
}
