"""Host listings of any size cross the message pipe: split into parts, reassembled whole."""

from common.messages import MAX_MESSAGE_BYTES, DropReason, MessageReader, encode
from workers.hosts import Role
from workers.messages import HostEntry, HostsAssembler, HostsPart, host_parts

HOSTS = 10_000


def _host(i: int) -> HostEntry:
    return HostEntry(vm=f"smoke-abcdef-tpu-{i}-w0", host=0, role=Role.WORKER, address=f"10.0.{i >> 8}.{i & 255}",
                     service_port=10001, zone="us-central2-b", container="iris-worker",
                     slice=f"smoke-abcdef-tpu-{i}", slice_host=0, hosts_in_vm=1)  # fmt: skip


def test_ten_thousand_hosts_in_one_message_are_over_the_limit() -> None:
    """What discovery used to send: the reader refuses it, so no stream ever started."""
    whole = encode(HostsPart(tuple(_host(i) for i in range(HOSTS)), listing=0))
    assert len(whole) > MAX_MESSAGE_BYTES
    reader = MessageReader()
    assert reader.feed(whole) == [], "an over-long message is not accepted"
    assert [d.reason for d in reader.take_dropped()] == [DropReason.TOO_LARGE]


def test_ten_thousand_hosts_arrive_whole_through_the_reader() -> None:
    """Every part is under the limit; the assembler returns the listing once, in order."""
    hosts = [_host(i) for i in range(HOSTS)]
    wire = b"".join(encode(part) for part in host_parts(hosts, listing=7))
    reader, assembler, listings = MessageReader(), HostsAssembler(), []
    for offset in range(0, len(wire), 65536):  # a pipe's worth at a time
        for message in reader.feed(wire[offset : offset + 65536]):
            assert isinstance(message, HostsPart) and len(encode(message)) < MAX_MESSAGE_BYTES
            whole = assembler.feed(message)
            if whole is not None:
                listings.append(whole)
    assert listings == [hosts]


def test_a_listing_cut_short_by_a_restart_is_dropped_and_the_next_one_is_whole() -> None:
    """A discovery child that died mid-listing leaves parts without their end; they never count."""
    first = list(host_parts([_host(i) for i in range(1200)], listing=5))
    second = list(host_parts([_host(i) for i in range(1100)], listing=0))
    assembler = HostsAssembler()
    assert [assembler.feed(b) for b in first[:2]] == [None, None]
    results = [assembler.feed(b) for b in second]
    assert results[-1] == [_host(i) for i in range(1100)], "the new listing, without the old parts"
    assert assembler.feed(first[2]) is None, "a last part without its first parts is not a listing"


def test_a_small_listing_is_one_message() -> None:
    (body,) = host_parts([_host(0)], listing=0)
    assert HostsAssembler().feed(body) == [_host(0)]
