using System.Globalization;
using System.Text;
using Bridge.LoadTests.Harness;
using CsCheck;

namespace Bridge.Tests.Unit;

/// <summary>
/// The ingest scenario's clients write each publish frame as bytes into one reused buffer (<see cref="IngestFrame"/>,
/// "Ingest, tenth session"): the frames must stay the ones the clients sent before, built as strings.
/// </summary>
public sealed class IngestFrameTests
{
    [Fact]
    public void The_payload_written_into_a_buffer_is_the_created_body_for_any_time_sequence_room_and_size()
    {
        // A buffer per sample: CsCheck samples on several threads at once.
        Gen.Select(Gen.Long[0, long.MaxValue], Gen.Long[0, long.MaxValue], Gen.Int[0, int.MaxValue], Gen.Int[0, 200]).Sample((sent, n, room, size) =>
        {
            var buffer = new byte[LoadPayload.MaxLength * 4];
            var length = LoadPayload.Write(buffer, sent, n, room, size);
            Assert.Equal(Encoding.UTF8.GetString(LoadPayload.Create(sent, n, room, size)), Encoding.UTF8.GetString(buffer, 0, length));
        }, iter: 2_000);

        var buffer = new byte[LoadPayload.MaxLength * 4];
        Assert.Equal(64, LoadPayload.Write(buffer, 0, 12, 3));
        Assert.True(LoadPayload.Write(buffer, long.MaxValue, long.MaxValue, int.MaxValue) <= LoadPayload.MaxLength);
    }

    [Fact]
    public void A_frame_written_into_the_clients_buffer_is_the_frame_it_built_as_strings_and_a_valid_envelope()
    {
        var run = Gen.OneOf(Gen.Const("b-r1"), Gen.Const("base-warm12"), Gen.String[Gen.Char['a', 'z'], 1, 20].Select(s => "b-" + s));
        Gen.Select(run, Gen.Int[0, 999], Gen.Int[0, int.MaxValue], Gen.Int[0, 99_999]).Sample((run, index, n, room) =>
        {
            var buffer = new byte[IngestFrame.MaxLength]; // one per sample: CsCheck samples on several threads at once
            var prefix = Encoding.UTF8.GetBytes($"{run}-{index}-");
            var length = IngestFrame.Write(buffer, prefix, n, room);
            // What IngestClient.PublishAsync built before: the body as a string, the frame interpolated, then encoded.
            var body = Encoding.UTF8.GetString(LoadPayload.Create(0, n, room));
            var before = string.Create(CultureInfo.InvariantCulture, $$"""{"type":"load.ingest","room":"bench.r{{room}}","id":"{{run}}-{{index}}-{{n}}","payload":{{body}}}""");
            Assert.Equal(before, Encoding.UTF8.GetString(buffer, 0, length));
        }, iter: 2_000);

        var one = new byte[IngestFrame.MaxLength];
        var frame = one.AsSpan(0, IngestFrame.Write(one, "b-r2-7-"u8, 41, 5));
        using var json = System.Text.Json.JsonDocument.Parse(frame.ToArray());
        Assert.Equal(("load.ingest", "bench.r5", "b-r2-7-41"), (json.RootElement.GetProperty("type").GetString(), json.RootElement.GetProperty("room").GetString(), json.RootElement.GetProperty("id").GetString()));
        Assert.Equal(41, json.RootElement.GetProperty("payload").GetProperty("lseq").GetInt64());
    }
}
