using Bridge.Worker.Nats;

namespace Bridge.Tests.Unit;

/// <summary>The history reader's buffer of deliveries: one wake-up per batch, not per delivery (<see cref="WakeBatchBuffer{T}"/>).</summary>
public sealed class WakeBatchBufferTests
{
    [Fact]
    public void A_waiting_reader_is_woken_once_the_items_it_waits_for_are_all_buffered_and_not_before()
    {
        var buffer = new WakeBatchBuffer<int>(16);
        var wait = buffer.WaitAsync(3, CancellationToken.None);

        Assert.True(buffer.TryWrite(1, urgent: false));
        Assert.True(buffer.TryWrite(2, urgent: false));
        Assert.False(wait.IsCompleted, "two of the three items it waits for: still asleep");
        Assert.True(buffer.TryWrite(3, urgent: false));
        Assert.True(wait.IsCompleted);

        for (var expected = 1; expected <= 3; expected++)
        {
            Assert.True(buffer.TryRead(out var item));
            Assert.Equal(expected, item);
        }

        Assert.False(buffer.TryRead(out _));
    }

    [Fact]
    public void An_urgent_item_or_completion_wakes_the_reader_before_its_batch_is_complete()
    {
        var buffer = new WakeBatchBuffer<int>(16);
        var wait = buffer.WaitAsync(64, CancellationToken.None);
        buffer.TryWrite(1, urgent: false);
        Assert.False(wait.IsCompleted);
        buffer.TryWrite(2, urgent: true);
        Assert.True(wait.IsCompleted);
        Assert.True(buffer.TryRead(out _) && buffer.TryRead(out _));

        var error = new InvalidOperationException("too many");
        wait = buffer.WaitAsync(64, CancellationToken.None);
        buffer.Complete(error);
        Assert.True(wait.IsCompleted);
        Assert.True(buffer.IsCompleted);
        Assert.Same(error, buffer.Error);
        Assert.False(buffer.TryWrite(3, urgent: true), "nothing is buffered once completed");
    }

    [Fact]
    public void A_wait_with_items_already_buffered_returns_at_once_and_a_full_buffer_refuses_more()
    {
        var buffer = new WakeBatchBuffer<int>(2);
        Assert.True(buffer.TryWrite(1, urgent: false));
        Assert.True(buffer.WaitAsync(64, CancellationToken.None).IsCompleted);
        Assert.True(buffer.TryWrite(2, urgent: false));
        Assert.False(buffer.TryWrite(3, urgent: true));
        Assert.Equal(2, buffer.Count);
        Assert.True(buffer.TryPeek(out var first));
        Assert.Equal(1, first);
    }

    [Fact]
    public void Items_written_while_the_reader_is_part_way_through_what_it_took_are_read_after_it_in_order()
    {
        var buffer = new WakeBatchBuffer<int>(8);
        buffer.TryWrite(1, urgent: false);
        buffer.TryWrite(2, urgent: false);
        Assert.True(buffer.TryRead(out var first));
        buffer.TryWrite(3, urgent: false);
        Assert.Equal(2, buffer.Count);
        var read = new List<int> { first };
        while (buffer.TryRead(out var item))
        {
            read.Add(item);
        }

        Assert.Equal([1, 2, 3], read);
        Assert.False(buffer.WaitAsync(1, CancellationToken.None).IsCompleted, "nothing left: the reader waits");
    }
}
