using Bridge.Worker.Transports.WebSockets;

namespace Bridge.Tests.Unit;

/// <summary>How the linger after the WebSocket layer's 1007/1002 close recognises the client's close answer.</summary>
public sealed class WebSocketLingerTests
{
    // A masked binary frame "abc" and masked close frames (RFC 6455 §5.2), as a client sends them.
    private static readonly byte[] Data = [0x82, 0x83, 1, 2, 3, 4, (byte)('a' ^ 1), (byte)('b' ^ 2), (byte)('c' ^ 3)];
    private static readonly byte[] EmptyClose = [0x88, 0x80, 9, 9, 9, 9];
    private static readonly byte[] CloseWith1000 = [0x88, 0x82, 1, 2, 3, 4, 0x03 ^ 1, 0xE8 ^ 2];

    [Fact]
    public void A_close_answer_behind_other_frames_in_the_same_read_is_found() =>
        Assert.True(WebSocketConnection.EndsWithCloseFrame([.. Data, .. Data, .. CloseWith1000]));

    [Fact]
    public void A_close_answer_with_an_empty_or_a_longest_reason_is_found()
    {
        Assert.True(WebSocketConnection.EndsWithCloseFrame([.. Data, .. EmptyClose]));
        byte[] longest = [0x88, 0x80 | 125, 1, 2, 3, 4, .. new byte[125]];
        Assert.True(WebSocketConnection.EndsWithCloseFrame([.. Data, .. longest]));
    }

    [Fact]
    public void Data_frames_or_a_close_frame_not_yet_whole_are_not_a_close_answer()
    {
        Assert.False(WebSocketConnection.EndsWithCloseFrame([.. Data, .. Data]));
        Assert.False(WebSocketConnection.EndsWithCloseFrame([.. Data, .. CloseWith1000.AsSpan(0, CloseWith1000.Length - 1)]));
        Assert.False(WebSocketConnection.EndsWithCloseFrame(CloseWith1000.AsSpan(0, 5)));
    }
}
