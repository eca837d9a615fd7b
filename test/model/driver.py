#!/usr/bin/env python3
"""The clients of the model-based concurrency test (test/scripts/model.sh).

N client threads call a random mix of every API function on the queues of
test/model/setup.sql for SECONDS, while a killer thread terminates a random
client backend every KILL_EVERY seconds (the client reconnects) and the fetch
or sync worker every WORKER_KILL_EVERY seconds, and a mutator changes the
sample API's records and open set.  Every call is recorded with its outcome
as the client saw it -- ok, error (with its SQLSTATE) or unknown (the
connection was lost during the call, so it may or may not have committed) --
and written at the end into model.call, for model.sh to replay against the
audit trail.

Clients: agents a1..aK connect as role m_app (a workqueue_agent) and name
themselves (now and then someone else) as worker/actor; m_plain1 and m_plain2
are plain roles acting as themselves (and sometimes trying to name someone
else); "postgres" is an administrator acting as itself (set_scope,
cancel_fetch, retry_fetches, moves that skip the role and lease checks).
Every call carries a tag (c<client>-<seq>) where the API keeps one: the
transition payload ({"tcall": tag}), the comment body, the update_fields key
and value, the add data.  Connection: libpq's PG* environment.
"""
import argparse
import json
import random
import sys
import threading
import time
import urllib.request

import psycopg2
import psycopg2.extras

PAUSE = 0.005
Q1 = Q2 = SRC = FSRC = None     # the run's queues and sources (arguments)
LOST = ("57P01", "57P02", "57P03", "08000", "08003", "08006", None)

FLOW = {   # m_flow: step -> transitions that leave it
    "triage": ["accept", "reject"],
    "review": ["ask", "resolve", "reject"],
    "waiting": ["answer"],
    "resolved": ["reopen"],
    "rejected": ["reopen"],
}
REVIEW = {"review": ["resolve", "reject"], "resolved": ["reopen"], "rejected": ["reopen"]}


def flow_of(queue):
    return FLOW if queue == Q1 else REVIEW


class World:
    """What every client may pick from: the items of the model's queues."""

    def __init__(self, conn):
        self.lock = threading.Lock()
        with conn.cursor() as cur:
            cur.execute("SELECT id, queue, external_id FROM workqueue.item WHERE queue IN (%s, %s)", (Q1, Q2))
            rows = cur.fetchall()
        self.items = {Q1: [r[0] for r in rows if r[1] == Q1], Q2: [r[0] for r in rows if r[1] == Q2]}
        self.fetchable = [r[0] for r in rows if r[2] and r[2].startswith("C-")]
        self.fetches = []

    def add(self, queue, item):
        with self.lock:
            self.items[queue].append(item)

    def pick(self, queue=None):
        with self.lock:
            queue = queue or random.choice([Q1, Q2])
            return random.choice(self.items[queue]) if self.items[queue] else None, queue


class Client(threading.Thread):
    def __init__(self, n, name, role, world, deadline, log):
        super().__init__(name=name, daemon=True)
        self.n, self.who, self.role, self.world, self.deadline = n, name, role, world, deadline
        self.log = log
        self.seq = 0
        self.held = {}          # item -> (queue, step) of this client's claims
        self.conn = None
        self.agent = role == "m_app"
        self.admin = role is None

    def connect(self):
        while True:
            try:
                self.conn = psycopg2.connect("", application_name="model-%s" % self.who)
                self.conn.autocommit = True
                with self.conn.cursor() as cur:
                    cur.execute("SET statement_timeout = '30s'")
                if self.role:
                    with self.conn.cursor() as cur:
                        cur.execute("SET ROLE " + self.role)
                return
            except psycopg2.Error:
                time.sleep(0.1)

    def actor(self):
        """Who the call names: oneself, now and then someone else."""
        if random.random() < 0.08:
            return random.choice(["a1", "a2", "a5", "a8"])
        return self.who

    def call(self, op, sql, params, queue=None, items=(), arg=None, fetch="one"):
        """Runs one API call; records it; returns (outcome, rows)."""
        self.seq += 1
        t0 = time.time()
        outcome, state, msg, rows = "ok", None, None, None
        try:
            with self.conn.cursor() as cur:
                cur.execute(sql, params)
                rows = cur.fetchall() if cur.description else []
        except psycopg2.Error as e:
            state, msg = e.pgcode, (e.pgerror or str(e)).strip().split("\n")[0][:300]
            outcome = "unknown" if state in LOST or self.conn.closed else "error"
        t1 = time.time()
        self.log.append((self.who, self.seq, op, queue, list(items), json.dumps(arg or {}), t0, t1,
                         outcome, state, msg, json.dumps(rows, default=str), "c%s-%s" % (self.n, self.seq)))
        if outcome == "unknown":
            try:
                self.conn.close()
            except psycopg2.Error:
                pass
            self.connect()
        return outcome, rows

    def tag(self):
        return "c%s-%s" % (self.n, self.seq + 1)

    def act_args(self):
        """The actor/worker argument: agents name someone, plain roles
        usually leave it out, the administrator acts as itself."""
        if self.agent:
            return self.actor()
        if not self.admin and random.random() < 0.05:
            return "a3"          # a plain role naming someone else: 42501
        return None

    def some_item(self, own=0.7):
        if self.held and random.random() < own:
            item = random.choice(list(self.held))
            return item, self.held[item][0], self.held[item][1]
        item, queue = self.world.pick()
        return item, queue, None

    # the operations ---------------------------------------------------

    def op_add(self):
        queue = random.choice([Q1, Q2])
        prio = 9 if random.random() < 0.05 else random.randint(1, 5)
        ext = ("L-%s" % self.tag()) if queue == Q1 and random.random() < 0.3 else None
        data = {"by": self.who, "tag": self.tag()}
        out, rows = self.call("add", "SELECT workqueue.add(%s, %s, %s, %s)", (queue, json.dumps(data), prio, ext),
                              queue, arg={"priority": prio, "external_id": ext, "tag": self.tag()})
        if out == "ok":
            self.world.add(queue, rows[0][0])

    def op_claim(self):
        queue = Q2 if random.random() < 0.55 else Q1
        n = 1 if random.random() < 0.6 else random.randint(2, 4)
        worker = self.act_args() if not self.agent else self.who
        if worker is None:
            out, rows = self.call("claim", "SELECT id, step FROM workqueue.claim(%s, %s)", (queue, n), queue, arg={"n": n})
        else:
            out, rows = self.call("claim", "SELECT id, step FROM workqueue.claim(%s, %s, %s)", (queue, n, worker),
                                  queue, arg={"n": n, "worker": worker})
        if out == "ok" and worker in (None, self.who):
            for item, step in rows:
                self.held[item] = (queue, step)

    def transition_name(self, queue, step):
        flow = flow_of(queue)
        if step in flow and random.random() < 0.9:
            return random.choice(flow[step])
        return random.choice(sorted({t for ts in flow.values() for t in ts}))

    def op_transition(self):
        item, queue, step = self.some_item()
        if item is None:
            return
        name = self.transition_name(queue, step)
        payload = {"tcall": self.tag()}
        if name == "resolve" and random.random() < 0.85:
            payload["resolution"] = "done"
        actor = self.act_args()
        args = (item, name, json.dumps(payload)) + ((actor,) if actor else ())
        out, rows = self.call("transition", "SELECT step FROM workqueue.transition(%s, %s, %s" + (", %s" if actor else "") + ")",
                              args, queue, [item], {"transition": name, "actor": actor, "tag": self.tag()})
        if out == "ok" or (out == "error" and item in self.held):
            self.held.pop(item, None)

    def op_transition_many(self):
        queue = random.choice([Q1, Q2])
        k = random.randint(2, 6)
        with self.conn.cursor() as cur:
            try:
                # now and then items whose fetch is under way, so that the
                # batch and the fetch worker's turn want the same rows
                busy = "AND id IN (SELECT item_id FROM workqueue.fetch WHERE queue = %s AND status IN " \
                       "('queued', 'processing')) " if queue == Q1 and random.random() < 0.4 else ""
                cur.execute("SELECT id, step FROM workqueue.item WHERE queue = %s AND status = 'open' " + busy
                            + "ORDER BY random() LIMIT %s", (queue, Q1, k) if busy else (queue, k))
                rows = cur.fetchall()
            except psycopg2.Error:
                self.conn.close()
                self.connect()
                return
        if not rows:
            return
        step = rows[0][1]
        ids = [r[0] for r in rows if r[1] == step]
        if random.random() < 0.3:        # mixed: something that fails the whole batch
            extra, _ = self.world.pick(queue)
            if extra is not None:
                ids.append(extra)
        if self.held and random.random() < 0.3:
            ids.append(random.choice(list(self.held)))
        random.shuffle(ids)
        name = self.transition_name(queue, step)
        payload = {"tcall": self.tag()}
        if name == "resolve":
            payload["resolution"] = "batch"
        actor = self.act_args()
        args = (ids, name, json.dumps(payload)) + ((actor,) if actor else ())
        out, rows = self.call("transition_many",
                              "SELECT workqueue.transition_many(%s::bigint[], %s, %s" + (", %s" if actor else "") + ")",
                              args, queue, ids, {"transition": name, "actor": actor, "tag": self.tag()})
        if out == "ok":
            for i in ids:
                self.held.pop(i, None)

    def op_release(self):
        item, queue, _ = self.some_item(0.85)
        if item is None:
            return
        worker = self.who if self.agent else self.act_args()
        args = (item,) + ((worker,) if worker else ())
        self.call("release", "SELECT status FROM workqueue.release(%s" + (", %s" if worker else "") + ")",
                  args, queue, [item], {"worker": worker})
        self.held.pop(item, None)

    def op_extend_lease(self):
        item, queue, _ = self.some_item(0.9)
        if item is None:
            return
        worker = self.who if self.agent else self.act_args()
        args = (item, "%s milliseconds" % random.choice([200, 500, 1000])) + ((worker,) if worker else ())
        out, _ = self.call("extend_lease", "SELECT lease_until FROM workqueue.extend_lease(%s, %s::interval"
                           + (", %s" if worker else "") + ")", args, queue, [item], {"worker": worker})
        if out == "error":
            self.held.pop(item, None)

    def op_comment(self):
        item, queue, _ = self.some_item(0.3)
        if item is None:
            return
        actor = self.act_args()
        body = "cm %s" % self.tag()
        args = (item, body) + ((actor,) if actor else ())
        self.call("comment", "SELECT workqueue.comment(%s, %s" + (", %s" if actor else "") + ")",
                  args, queue, [item], {"actor": actor, "tag": self.tag()})

    def op_update_fields(self):
        item, queue, _ = self.some_item(0.3)
        if item is None:
            return
        actor = self.act_args()
        fields = {"u%s" % self.n: self.seq + 1}
        args = (item, json.dumps(fields)) + ((actor,) if actor else ())
        self.call("update_fields", "SELECT workqueue.update_fields(%s, %s" + (", %s" if actor else "") + ") IS NOT NULL",
                  args, queue, [item], {"actor": actor, "key": "u%s" % self.n, "value": self.seq + 1})

    def op_enqueue_fetch(self):
        if random.random() < 0.85 and self.world.fetchable:
            item = random.choice(self.world.fetchable)
        else:
            item, _ = self.world.pick(Q1)
        if item is None:
            return
        out, rows = self.call("enqueue_fetch", "SELECT workqueue.enqueue_fetch(%s, %s)", (item, FSRC), Q1, [item])
        if out == "ok":
            with self.world.lock:
                self.world.fetches.append(rows[0][0])

    def op_upsert_items(self):
        recs = []
        for k in random.sample(range(1, 16), random.randint(1, 5)):
            r = {"external_id": "U-%s-%s" % (self.n, k), "data": {"v": random.randint(0, 2)}}
            if random.random() < 0.5:
                r["priority"] = random.randint(1, 5)
            recs.append(r)
        bad = random.random() < 0.12
        if bad:
            recs.append({"external_id": "U-%s-bad" % self.n, "priority": 9})
        src = self.who if self.agent else None
        out, rows = self.call("upsert_items", "SELECT inserted, updated, unchanged FROM workqueue.upsert_items(%s, %s, %s)",
                              (Q1, json.dumps(recs), src), Q1, arg={"n": len(recs), "source": src, "bad": bad})
        if out == "ok":
            with self.conn.cursor() as cur:
                try:
                    cur.execute("SELECT id FROM workqueue.item WHERE queue = %s AND external_id = ANY(%s)",
                                (Q1, [r["external_id"] for r in recs]))
                    for (i,) in cur.fetchall():
                        if i not in self.world.items[Q1]:
                            self.world.add(Q1, i)
                except psycopg2.Error:
                    self.conn.close()
                    self.connect()

    def op_sync(self):
        full = random.random() < 0.4
        self.call("sync", "SELECT workqueue.sync(%s, %s)", (SRC, full), Q1, arg={"full": full})

    def op_read(self):
        item, queue, _ = self.some_item(0.2)
        which = random.choice(["list_items", "get_items", "history", "allowed_transitions", "sla_status"])
        sql = {"list_items": ("SELECT count(*) FROM workqueue.list_items(%s, 'open', 10)", (queue,)),
               "get_items": ("SELECT count(*) FROM workqueue.get_items(%s::bigint[])", ([item or 0],)),
               "history": ("SELECT count(*) FROM workqueue.history(%s)", (item or 0,)),
               "allowed_transitions": ("SELECT count(*) FROM workqueue.allowed_transitions(%s)", (item or 0,)),
               "sla_status": ("SELECT count(*) FROM workqueue.sla_status(%s)", (item or 0,))}[which]
        self.call(which, sql[0], sql[1], queue, [item] if item else [])

    # the administrator's own operations
    def op_set_scope(self):
        ids = [self.world.pick(Q1)[0] for _ in range(random.randint(1, 4))]
        ids = [i for i in ids if i is not None]
        scope = random.choice([[], ["mx"], ["mx", "my"]])
        self.call("set_scope", "SELECT workqueue.set_scope(%s::bigint[], %s::text[])", (ids, scope), Q1, ids,
                  {"scope": scope})

    def op_cancel_fetch(self):
        with self.world.lock:
            f = random.choice(self.world.fetches) if self.world.fetches else None
        if f is not None:
            self.call("cancel_fetch", "SELECT status FROM workqueue.cancel_fetch(%s)", (f,), Q1, arg={"fetch": f})

    def op_retry_fetches(self):
        self.call("retry_fetches", "SELECT workqueue.retry_fetches(%s, now() - interval '20 seconds')", (FSRC,), Q1)

    def run(self):
        self.connect()
        ops = [(self.op_add, 8), (self.op_claim, 16), (self.op_transition, 16), (self.op_transition_many, 6),
               (self.op_release, 5), (self.op_extend_lease, 5), (self.op_comment, 8), (self.op_update_fields, 8),
               (self.op_enqueue_fetch, 5), (self.op_upsert_items, 4), (self.op_sync, 0.6), (self.op_read, 5)]
        if self.admin:
            ops = [(self.op_set_scope, 6), (self.op_cancel_fetch, 3), (self.op_retry_fetches, 1),
                   (self.op_transition, 6), (self.op_transition_many, 2), (self.op_add, 3), (self.op_comment, 2),
                   (self.op_sync, 1), (self.op_upsert_items, 1)]
        fns, weights = zip(*ops)
        while time.time() < self.deadline:
            fn = random.choices(fns, weights)[0]
            try:
                fn()
            except psycopg2.Error:
                # a read of the op's own (not recorded) failed: start over
                self.connect()
            time.sleep(PAUSE * (10 if self.admin else 1))


def control(api, body):
    req = urllib.request.Request(api + "/_control", data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=10).read()


def killer(deadline, kill_every, worker_every, api, cases, log):
    """Terminates client backends and workers; changes the upstream."""
    conn = psycopg2.connect("", application_name="model-killer")
    conn.autocommit = True
    cur = conn.cursor()
    next_client = time.time() + kill_every
    next_worker = time.time() + worker_every
    next_api = time.time() + 2
    kinds = ["workqueue fetch worker", "workqueue sync worker"]
    seq = worker_kills = 0
    while time.time() < deadline:
        now = time.time()
        if now >= next_client:
            next_client = now + kill_every * random.uniform(0.5, 1.5)
            cur.execute("SELECT pid, application_name, state FROM pg_stat_activity "
                        "WHERE application_name LIKE 'model-%%' AND application_name NOT IN ('model-killer', 'model-setup') "
                        "ORDER BY random() LIMIT 1")
            row = cur.fetchone()
            if row:
                cur.execute("SELECT pg_terminate_backend(%s)", (row[0],))
                seq += 1
                log.append(("killer", seq, "kill_client", None, [], json.dumps({"pid": row[0], "client": row[1],
                            "state": row[2]}), now, time.time(), "ok" if cur.fetchone()[0] else "error", None, None, "[]",
                            "k-%s" % seq))
        if now >= next_worker:
            next_worker = now + worker_every * random.uniform(0.7, 1.3)
            kind = kinds[worker_kills % 2]
            worker_kills += 1
            cur.execute("SELECT pid FROM pg_stat_activity WHERE backend_type = %s AND datname = current_database()",
                        (kind,))
            row = cur.fetchone()
            if row:
                cur.execute("SELECT pg_terminate_backend(%s)", (row[0],))
                seq += 1
                log.append(("killer", seq, "kill_" + kind.split()[1], None, [], json.dumps({"pid": row[0]}), now,
                            time.time(), "ok" if cur.fetchone()[0] else "error", None, None, "[]", "k-%s" % seq))
        if now >= next_api:
            next_api = now + 2
            ids = ["C-%04d" % i for i in range(1, cases + 1)]
            body = {"update": {i: {"name": "Round %d" % int(now)} for i in random.sample(ids, 10)}}
            if random.random() < 0.4:     # some cases vanish upstream, others come back
                body["open"] = [i for i in ids if random.random() < 0.93]
            try:
                control(api, body)
            except Exception as e:        # the API is the test's own: say so, go on
                print("# mutator: %s" % e, file=sys.stderr)
        time.sleep(0.05)
    conn.close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=50)
    p.add_argument("--agents", type=int, default=8)
    p.add_argument("--api", required=True)
    p.add_argument("--run", required=True, help="the suffix of setup.sql's names")
    p.add_argument("--cases", type=int, default=200)
    p.add_argument("--kill-every", type=float, default=2.0)
    p.add_argument("--worker-kill-every", type=float, default=5.0)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--pause-ms", type=float, default=5, help="each client's pause between calls")
    a = p.parse_args()
    global Q1, Q2, SRC, FSRC, PAUSE
    PAUSE = a.pause_ms / 1000
    Q1, Q2, SRC, FSRC = ("%s_%s" % (n, a.run) for n in ("m_q1", "m_q2", "m_src", "m_fsrc"))
    seed = a.seed if a.seed is not None else random.randrange(1 << 30)
    random.seed(seed)
    print("# driver seed %d (MODEL_SEED=%d repeats the choices, not the timing)" % (seed, seed))
    admin = psycopg2.connect("", application_name="model-setup")
    admin.autocommit = True
    world = World(admin)
    deadline = time.time() + a.seconds
    log = []                      # list.append is atomic under the GIL
    clients = [Client(i, "a%d" % i, "m_app", world, deadline, log) for i in range(1, a.agents + 1)]
    clients += [Client(a.agents + 1, "m_plain1", "m_plain1", world, deadline, log),
                Client(a.agents + 2, "m_plain2", "m_plain2", world, deadline, log),
                Client(a.agents + 3, "postgres", None, world, deadline, log)]
    k = threading.Thread(target=killer, args=(deadline, a.kill_every, a.worker_kill_every, a.api, a.cases, log),
                         daemon=True)
    for t in clients + [k]:
        t.start()
    for t in clients + [k]:
        t.join(a.seconds + 120)
    with admin.cursor() as cur:
        psycopg2.extras.execute_values(
            cur, "INSERT INTO model.call (client, seq, op, queue, items, arg, t0, t1, outcome, sqlstate, message, result, tag) "
            "VALUES %s", log,
            template="(%s, %s, %s, %s, %s::bigint[], %s::jsonb, to_timestamp(%s), to_timestamp(%s), %s, %s, %s, %s::jsonb, %s)",
            page_size=1000)
    print("# %d calls by %d clients in %.0f s" % (len(log), len(clients), a.seconds))


if __name__ == "__main__":
    main()
