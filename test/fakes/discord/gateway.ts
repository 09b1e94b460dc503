/**
 * The gateway half of the fake Discord: a WebSocket speaking gateway v10 JSON without compression
 * (events/gateway.mdx). HELLO → IDENTIFY → READY + GUILD_CREATE, heartbeats acked, RESUME replays
 * what a session missed, and dispatches go only to sessions whose intents cover them.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { randomUUID } from 'node:crypto';
import { WebSocketServer, type WebSocket } from 'ws';

const Op = {
  Dispatch: 0,
  Heartbeat: 1,
  Identify: 2,
  Resume: 6,
  Reconnect: 7,
  InvalidSession: 9,
  Hello: 10,
  HeartbeatAck: 11,
} as const;

/** Privileged intents (GuildMembers, GuildPresences, MessageContent) need approval in the portal. */
const PRIVILEGED_INTENTS = (1 << 1) | (1 << 8) | (1 << 15);
/** Every intent bit Discord knows today; anything above is an invalid intent (close 4013). */
const KNOWN_INTENTS = (1 << 26) - 1;

interface Session {
  id: string;
  intents: number;
  seq: number;
  /** Every dispatch of this session, so a RESUME can replay what the client missed. */
  sent: { s: number; t: string; d: unknown }[];
  socket: WebSocket | null;
}

export interface IdentifyRecord {
  token: string;
  intents: number;
  properties: unknown;
  shard: unknown;
  compress: unknown;
}

export interface GatewayOptions {
  token: string;
  heartbeatIntervalMs: number;
  allowedPrivilegedIntents: number;
  /** ws:// URL of this gateway, put into READY.resume_gateway_url. */
  url: () => string;
  /** READY's d (without session_id / resume_gateway_url) and the GUILD_CREATE payloads to follow. */
  onIdentify: () => { ready: Record<string, unknown>; guilds: Record<string, unknown>[] };
}

export class FakeGateway {
  readonly identifies: IdentifyRecord[] = [];
  readonly resumes: { sessionId: string; seq: number }[] = [];
  private readonly wss = new WebSocketServer({ noServer: true });
  private readonly sessions = new Map<string, Session>();
  private readonly sockets = new Set<WebSocket>();

  constructor(private readonly options: GatewayOptions) {}

  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = new URL(request.url ?? '/', 'http://localhost');
    if (url.pathname !== '/gateway') {
      socket.destroy();
      return;
    }
    this.wss.handleUpgrade(request, socket, head, (ws) => this.onConnection(ws, url.searchParams));
  }

  private onConnection(ws: WebSocket, params: URLSearchParams): void {
    this.sockets.add(ws);
    ws.on('close', (code) => {
      this.sockets.delete(ws);
      for (const session of this.sessions.values()) {
        if (session.socket !== ws) continue;
        session.socket = null;
        // A client closing with 1000/1001 ends its session (events/gateway.mdx, "Disconnecting").
        if (code === 1000 || code === 1001) this.sessions.delete(session.id);
      }
    });
    if (params.get('v') !== '10') {
      ws.close(4012, 'Invalid API version');
      return;
    }
    if ((params.get('encoding') ?? 'json') !== 'json' || params.has('compress')) {
      // This fake speaks plain JSON only; discord.js asks for zlib-stream only when zlib-sync is installed.
      ws.close(4002, 'Decode error');
      return;
    }
    send(ws, { op: Op.Hello, d: { heartbeat_interval: this.options.heartbeatIntervalMs }, s: null, t: null });
    let session: Session | null = null;
    ws.on('message', (raw) => {
      let payload: { op?: number; d?: Record<string, unknown> | number | null };
      try {
        payload = JSON.parse(String(raw)) as typeof payload;
      } catch {
        ws.close(4002, 'Decode error');
        return;
      }
      switch (payload.op) {
        case Op.Heartbeat:
          send(ws, { op: Op.HeartbeatAck, d: null, s: null, t: null });
          return;
        case Op.Identify: {
          if (session) {
            ws.close(4005, 'Already authenticated');
            return;
          }
          session = this.identify(ws, (payload.d ?? {}) as Record<string, unknown>);
          return;
        }
        case Op.Resume: {
          session = this.resume(ws, (payload.d ?? {}) as Record<string, unknown>);
          return;
        }
        default:
          if (!session) ws.close(4003, 'Not authenticated');
      }
    });
  }

  private identify(ws: WebSocket, d: Record<string, unknown>): Session | null {
    const intents = typeof d.intents === 'number' ? d.intents : -1;
    this.identifies.push({
      token: String(d.token),
      intents,
      properties: d.properties,
      shard: d.shard,
      compress: d.compress,
    });
    if (d.token !== this.options.token) {
      ws.close(4004, 'Authentication failed');
      return null;
    }
    if (intents < 0 || (intents & ~KNOWN_INTENTS) !== 0) {
      ws.close(4013, 'Invalid intent(s)');
      return null;
    }
    if ((intents & PRIVILEGED_INTENTS & ~this.options.allowedPrivilegedIntents) !== 0) {
      ws.close(4014, 'Disallowed intent(s)');
      return null;
    }
    const session: Session = { id: randomUUID().replaceAll('-', ''), intents, seq: 0, sent: [], socket: ws };
    this.sessions.set(session.id, session);
    const { ready, guilds } = this.options.onIdentify();
    this.sendDispatch(session, 'READY', {
      ...ready,
      session_id: session.id,
      resume_gateway_url: this.options.url(),
      shard: [0, 1],
    });
    for (const guild of guilds) {
      if (intents & 1) this.sendDispatch(session, 'GUILD_CREATE', guild);
    }
    return session;
  }

  private resume(ws: WebSocket, d: Record<string, unknown>): Session | null {
    const session = typeof d.session_id === 'string' ? this.sessions.get(d.session_id) : undefined;
    const seq = typeof d.seq === 'number' ? d.seq : 0;
    this.resumes.push({ sessionId: String(d.session_id), seq });
    if (d.token !== this.options.token) {
      ws.close(4004, 'Authentication failed');
      return null;
    }
    if (!session) {
      send(ws, { op: Op.InvalidSession, d: false, s: null, t: null });
      return null;
    }
    session.socket = ws;
    for (const event of session.sent) {
      if (event.s > seq) send(ws, { op: Op.Dispatch, ...event });
    }
    this.sendDispatch(session, 'RESUMED', {});
    return session;
  }

  private sendDispatch(session: Session, t: string, d: unknown): void {
    session.seq += 1;
    const event = { s: session.seq, t, d };
    session.sent.push(event);
    if (session.socket) send(session.socket, { op: Op.Dispatch, ...event });
  }

  /**
   * Sends an event to every live session whose intents include `intent` (undefined: always sent,
   * as INTERACTION_CREATE). Sessions whose socket dropped keep it for their RESUME.
   */
  dispatch(t: string, d: unknown, intent?: number): number {
    let delivered = 0;
    for (const session of this.sessions.values()) {
      if (intent !== undefined && (session.intents & intent) === 0) continue;
      this.sendDispatch(session, t, d);
      if (session.socket) delivered += 1;
    }
    return delivered;
  }

  /** Closes every client socket with a resumable code, as Discord does on a server restart. */
  dropConnections(code = 4000): void {
    for (const ws of this.sockets) ws.close(code, 'Unknown error');
  }

  get connectedSessions(): number {
    return [...this.sessions.values()].filter((s) => s.socket !== null).length;
  }

  async close(): Promise<void> {
    for (const ws of this.sockets) ws.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }
}

function send(ws: WebSocket, payload: unknown): void {
  if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(payload));
}
