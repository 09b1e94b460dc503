// `npm run bench -- discord`: N concurrent `/comic new` (default 50) against the fake Discord with the
// real bot (runBot: router, handlers, CPU workers, post worker). Per command it times
//   - defer: from the INTERACTION_CREATE dispatch to the bot's deferral callback (Discord allows 3 s;
//     target p99 < 250 ms),
//   - storyboard: from the dispatch to the storyboard message in the channel (script by the template
//     writer, storyboard pages drawn on the CPU with a small page geometry, posted through REST).
// No runner is started: panel renders simply wait in the queue; only the first two steps are timed.
// Each command comes from its own member in its own channel; the guild's in-flight limits are raised.
//
// Needs Redis (REDIS_URL, default 127.0.0.1:6379) and PostgreSQL (TEST_DATABASE_URL, default
// postgres://postgres@127.0.0.1:5432/test; a scratch database is created and dropped).
import { updateGuildSettings } from '../src/db/guild-settings.ts';
import { startBotHarness } from '../test/helpers/bot.ts';

const N = Number(process.env.BENCH_N ?? 50);

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return Math.round(sorted[index]! * 10) / 10;
}

const harness = await startBotHarness({
  label: 'bench-discord',
  discord: {
    guilds: [
      {
        channels: Array.from({ length: N }, (_, i) => ({ name: `comics-${i}` })),
        members: Array.from({ length: N }, (_, i) => ({ username: `member${i}` })),
      },
    ],
  },
});
const { fake, database } = harness;
try {
  await updateGuildSettings(database.db, fake.guild.id, { maxInFlightPerGuild: N, maxInFlightPerUser: 1 });

  const started: Promise<{ defer: number; storyboard: number }>[] = [];
  for (let i = 0; i < N; i++) {
    const channelId = fake.guild.channels[i]!.id;
    const userId = fake.user(`member${i}`).id;
    const t0 = performance.now();
    const { id } = fake.sendSlashCommand({
      name: 'comic',
      subcommand: 'new',
      channelId,
      userId,
      options: { prompt: `Story number ${i}: a lighthouse keeper and a cat`, pages: 1, panels: 4 },
    });
    started.push(
      (async () => {
        await fake.waitFor(() => fake.interaction(id)?.callback, 30_000);
        const defer = performance.now() - t0;
        await fake.waitFor(
          () =>
            fake
              .messages(channelId)
              .some((m) => m.interactionId === null && !m.webhookId && m.content.startsWith('📖')),
          300_000,
        );
        return { defer, storyboard: performance.now() - t0 };
      })(),
    );
  }
  const results = await Promise.all(started);
  const defers = results.map((r) => r.defer);
  const storyboards = results.map((r) => r.storyboard);
  const figures = {
    bench: 'discord',
    concurrent: N,
    defer_p50_ms: percentile(defers, 50),
    defer_p99_ms: percentile(defers, 99),
    defer_min_ms: percentile(defers, 0),
    storyboard_p50_ms: percentile(storyboards, 50),
    storyboard_p99_ms: percentile(storyboards, 99),
    defer_target_p99_ms: 250,
  };
  console.log(
    `${N} concurrent /comic new against the fake Discord (real bot, template writer, storyboard on CPU)`,
  );
  console.log(
    `  command → deferral:   p50 ${figures.defer_p50_ms} ms   p99 ${figures.defer_p99_ms} ms   (target p99 < 250 ms)`,
  );
  console.log(
    `  command → storyboard: p50 ${figures.storyboard_p50_ms} ms   p99 ${figures.storyboard_p99_ms} ms`,
  );
  console.log(JSON.stringify(figures));
} finally {
  await harness.close();
}
