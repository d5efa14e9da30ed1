// A TCP proxy in front of Redis whose link can be cut: every connection through it is dropped and
// new ones are refused (accepted and closed at once) until it is restored.
import net from 'node:net';

export class TcpProxy {
  private server: net.Server | undefined;
  private readonly pairs = new Set<[net.Socket, net.Socket]>();
  private isCut = false;
  /** Connections dropped or refused while cut. */
  dropped = 0;

  constructor(private readonly targetPort: number) {}

  /** Listens on a free port (once) and returns it. */
  async start(): Promise<number> {
    if (this.server) return (this.server.address() as net.AddressInfo).port;
    this.server = net.createServer((client) => this.accept(client));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    return (this.server.address() as net.AddressInfo).port;
  }

  private accept(client: net.Socket) {
    if (this.isCut) {
      this.dropped++;
      client.destroy();
      return;
    }
    const upstream = net.connect(this.targetPort, '127.0.0.1');
    const pair: [net.Socket, net.Socket] = [client, upstream];
    this.pairs.add(pair);
    const drop = () => {
      this.pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream);
    upstream.pipe(client);
  }

  /** Drops every connection and refuses new ones until restore(). */
  cut(): void {
    this.isCut = true;
    for (const [client, upstream] of this.pairs) {
      this.dropped++;
      client.destroy();
      upstream.destroy();
    }
    this.pairs.clear();
  }

  restore(): void {
    this.isCut = false;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise((resolve) => this.server?.close(resolve));
  }
}
