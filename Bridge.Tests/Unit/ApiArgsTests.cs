using System.Text;
using Bridge.Contracts;
using Bridge.Worker.Backend;
using Bridge.Worker.Security;

namespace Bridge.Tests.Unit;

/// <summary>The backend API's edge: what a body must be before any field is read.</summary>
public sealed class ApiArgsTests
{
    [Fact]
    public void The_sender_rule_refuses_exactly_the_characters_char_IsControl_names_wherever_they_stand()
    {
        // The rule is read per backend message (Bridge-From) with a vectorized search: it must refuse what
        // char.IsControl refuses (Unicode category Cc) and nothing else, for every UTF-16 code unit, first, inside or last.
        for (var c = 0; c <= char.MaxValue; c++)
        {
            var ch = (char)c;
            var expected = !char.IsControl(ch);
            Assert.True(expected == TokenValidator.IsValidSubject(ch.ToString()), $"U+{c:X4} alone");
            Assert.True(expected == TokenValidator.IsValidSubject($"device-{ch}-42"), $"U+{c:X4} inside");
            Assert.True(expected == TokenValidator.IsValidSubject(new string('x', TokenValidator.MaxSubjectLength - 1) + ch), $"U+{c:X4} last");
        }

        Assert.False(TokenValidator.IsValidSubject(""));
        Assert.False(TokenValidator.IsValidSubject(null));
        Assert.False(TokenValidator.IsValidSubject(new string('x', TokenValidator.MaxSubjectLength + 1)));
    }

    [Theory]
    [InlineData("""{"from":"\ud800"}""")]
    [InlineData("""{"payload":{"x":"a\udc00b"}}""")]
    [InlineData("""{"\udc00":1}""")]
    public void A_body_with_a_lone_surrogate_escape_anywhere_is_refused_as_bad_frame(string json)
    {
        var refused = Assert.Throws<ApiException>(() => ApiArgs.Parse(Encoding.UTF8.GetBytes(json), Bridge.Worker.Core.WireFormat.Json).Dispose());
        Assert.Equal((400, ErrorCodes.BadFrame), (refused.Status, refused.Code));
    }
    [Theory]
    [InlineData("""{"from":"a\u0001b"}""")]
    [InlineData("""{"from":"a\tb"}""")]
    [InlineData("""{"user":"a\u0001b"}""")]
    public void A_sender_with_a_control_character_is_refused_in_the_words_of_the_one_sender_rule_as_a_long_one_is(string json)
    {
        // One rule for a sender (TokenValidator.IsValidSubject), quoted the same whatever breaks it: a control character
        // here, 257 characters below, and 257 three-byte characters (over any byte bound a pre-check could put).
        var name = json.Contains("\"user\"", StringComparison.Ordinal) ? "user" : "from";
        string Refusal(string body)
        {
            using var args = ApiArgs.Parse(Encoding.UTF8.GetBytes(body), Bridge.Worker.Core.WireFormat.Json);
            var refused = Assert.Throws<ApiException>(() => args.Subject(name));
            Assert.Equal((400, ErrorCodes.InvalidArgument), (refused.Status, refused.Code));
            return refused.Message;
        }

        var control = Refusal(json);
        Assert.Equal(Refusal($$"""{"{{name}}":"{{new string('x', 257)}}"}"""), control);
        Assert.Equal(Refusal($$"""{"{{name}}":"{{new string('€', 257)}}"}"""), control);
        Assert.Equal($"field '{name}' must be 1-256 characters without control characters, as a token's sub", control);
    }
}
