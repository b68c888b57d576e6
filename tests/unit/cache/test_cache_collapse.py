"""Request collapsing: one origin fetch per key however many misses arrive at once."""

import asyncio

from originguard.cache.collapse import Collapser, Follower, Leader, Wait
from originguard.cache.store import Entry

ENTRY = Entry(key=b"k", status=200, headers=[], body=b"ok", stored_at=0.0, request_time=0.0,
              response_time=0.0)


def run(coro):
    return asyncio.run(coro)


def test_fifty_concurrent_misses_make_one_leader_and_share_its_entry():
    async def scenario():
        collapser = Collapser(lock_timeout=60)
        origin_requests = 0
        origin_may_answer = asyncio.Event()

        async def request():
            nonlocal origin_requests
            role = collapser.acquire(b"k")
            if isinstance(role, Leader):
                with role:
                    origin_requests += 1
                    await origin_may_answer.wait()
                    role.publish(ENTRY)
                    return "leader", ENTRY
            outcome = await role.wait()
            return outcome.kind, outcome.entry

        tasks = [asyncio.create_task(request()) for _ in range(50)]
        await asyncio.sleep(0)  # let every task reach acquire / wait
        origin_may_answer.set()
        results = await asyncio.gather(*tasks)
        return origin_requests, results, len(collapser)

    origin_requests, results, in_flight = run(scenario())
    assert origin_requests == 1
    assert [kind for kind, _ in results].count("leader") == 1
    assert [kind for kind, _ in results].count(Wait.SHARED) == 49
    assert all(entry is ENTRY for _, entry in results)
    assert in_flight == 0


def test_unshareable_response_sends_each_follower_to_the_origin():
    async def scenario():
        collapser = Collapser()
        leader = collapser.acquire(b"k")
        follower = collapser.acquire(b"k")
        assert isinstance(leader, Leader) and isinstance(follower, Follower)
        assert leader.followers == 1
        waiting = asyncio.create_task(follower.wait())
        await asyncio.sleep(0)
        leader.publish(None)
        return await waiting

    assert run(scenario()).kind is Wait.NOT_SHAREABLE


def test_follower_proceeds_to_origin_after_its_lock_timeout():
    async def scenario():
        collapser = Collapser()
        leader = collapser.acquire(b"k")
        follower = collapser.acquire(b"k", timeout=0)
        outcome = await follower.wait()
        # The leader is untouched by a follower's timeout and can still publish.
        leader.publish(ENTRY)
        return outcome, len(collapser)

    outcome, in_flight = run(scenario())
    assert outcome.kind is Wait.TIMED_OUT
    assert in_flight == 0


def test_cancelled_leader_releases_its_followers():
    async def scenario():
        collapser = Collapser(lock_timeout=60)
        leader_started = asyncio.Event()

        async def leader_task():
            role = collapser.acquire(b"k")
            assert isinstance(role, Leader)
            with role:
                leader_started.set()
                await asyncio.Event().wait()  # an origin that never answers

        task = asyncio.create_task(leader_task())
        await leader_started.wait()
        followers = [collapser.acquire(b"k") for _ in range(3)]
        waits = [asyncio.create_task(f.wait()) for f in followers if isinstance(f, Follower)]
        await asyncio.sleep(0)
        task.cancel()
        outcomes = await asyncio.gather(*waits)
        next_role = collapser.acquire(b"k")
        return outcomes, next_role

    outcomes, next_role = run(scenario())
    assert [o.kind for o in outcomes] == [Wait.LEADER_GONE] * 3
    assert isinstance(next_role, Leader)  # the key is free again


def test_leader_failing_with_an_exception_releases_the_key():
    async def scenario():
        collapser = Collapser()
        role = collapser.acquire(b"k")
        assert isinstance(role, Leader)
        follower = collapser.acquire(b"k")
        try:
            with role:
                raise ConnectionError("origin refused")
        except ConnectionError:
            pass
        assert isinstance(follower, Follower)
        return (await follower.wait()).kind, len(collapser)

    assert run(scenario()) == (Wait.LEADER_GONE, 0)


def test_cancelling_one_follower_leaves_the_others_waiting():
    async def scenario():
        collapser = Collapser(lock_timeout=60)
        leader = collapser.acquire(b"k")
        first, second = collapser.acquire(b"k"), collapser.acquire(b"k")
        assert isinstance(first, Follower) and isinstance(second, Follower)
        a = asyncio.create_task(first.wait())
        b = asyncio.create_task(second.wait())
        await asyncio.sleep(0)
        a.cancel()
        await asyncio.sleep(0)
        assert isinstance(leader, Leader)
        leader.publish(ENTRY)
        return (await b).kind, a.cancelled()

    assert run(scenario()) == (Wait.SHARED, True)


def test_different_keys_do_not_collapse():
    async def scenario():
        collapser = Collapser()
        return collapser.acquire(b"a"), collapser.acquire(b"b")

    a, b = run(scenario())
    assert isinstance(a, Leader) and isinstance(b, Leader)
