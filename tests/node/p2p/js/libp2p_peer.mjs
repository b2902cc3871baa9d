// A js-libp2p peer (TCP, Noise, Yamux, identify, ping, gossipsub), inside a libp2p private network
// unless the secret is "none", for Pinion's libp2p interop tests.
// Usage: node libp2p_peer.mjs <64-hex secret | none> [dial <multiaddr>] [topic <name>]
// (after a dial it pings the peer it reached)
// Prints one JSON line per event on stdout. Reads lines "publish <text>" on stdin (published on
// the topic); exits when stdin closes.
if (typeof Promise.withResolvers !== 'function') { // Node 20 lacks it; some libp2p 2.x deps call it
  Promise.withResolvers = function withResolvers () {
    let resolve
    let reject
    const promise = new this((res, rej) => { resolve = res; reject = rej })
    return { promise, resolve, reject }
  }
}

const { createLibp2p } = await import('libp2p')
const { tcp } = await import('@libp2p/tcp')
const { noise } = await import('@chainsafe/libp2p-noise')
const { yamux } = await import('@chainsafe/libp2p-yamux')
const { identify } = await import('@libp2p/identify')
const { preSharedKey } = await import('@libp2p/pnet')
const { multiaddr } = await import('@multiformats/multiaddr')
const { gossipsub } = await import('@chainsafe/libp2p-gossipsub')
const { ping } = await import('@libp2p/ping')

const [secret, ...rest] = process.argv.slice(2)
const opts = {}
for (let i = 0; i + 1 < rest.length; i += 2) opts[rest[i]] = rest[i + 1]
const say = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')

const swarmKey = new TextEncoder().encode(`/key/swarm/psk/1.0.0/\n/base16/\n${secret}`)
const privateNetwork = secret === 'none' ? {} : { connectionProtector: preSharedKey({ psk: swarmKey, timeout: 3000 }) }
const node = await createLibp2p({
  addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  ...privateNetwork,
  services: { identify: identify(), ping: ping(), pubsub: gossipsub({ allowPublishToZeroTopicPeers: true }) }
})
node.addEventListener('peer:connect', (evt) => say({ event: 'connect', peer: evt.detail.toString() }))
node.addEventListener('peer:identify', (evt) => say({
  event: 'identify',
  peer: evt.detail.peerId.toString(),
  agent: evt.detail.agentVersion,
  protocols: evt.detail.protocols
}))
say({ event: 'ready', id: node.peerId.toString(), addrs: node.getMultiaddrs().map(String) })

if (opts.topic) {
  node.services.pubsub.subscribe(opts.topic)
  node.services.pubsub.addEventListener('message', (evt) => say({
    event: 'message',
    topic: evt.detail.topic,
    from: evt.detail.type === 'signed' ? evt.detail.from.toString() : '',
    data: new TextDecoder().decode(evt.detail.data)
  }))
  node.services.pubsub.addEventListener('subscription-change', (evt) => say({
    event: 'subscription-change',
    peer: evt.detail.peerId.toString(),
    topics: evt.detail.subscriptions.filter((s) => s.subscribe).map((s) => s.topic)
  }))
}

if (opts.dial) {
  try {
    const conn = await node.dial(multiaddr(opts.dial), { signal: AbortSignal.timeout(5000) })
    say({ event: 'dialed', peer: conn.remotePeer.toString() })
    const rtt = await node.services.ping.ping(conn.remotePeer, { signal: AbortSignal.timeout(5000) })
    say({ event: 'pinged', peer: conn.remotePeer.toString(), ms: rtt })
  } catch (err) {
    say({ event: 'error', message: String(err) })
  }
}

let pending = ''
process.stdin.on('data', async (chunk) => {
  pending += chunk.toString()
  let nl
  while ((nl = pending.indexOf('\n')) >= 0) {
    const line = pending.slice(0, nl)
    pending = pending.slice(nl + 1)
    if (line.startsWith('publish ') && opts.topic) {
      try {
        await node.services.pubsub.publish(opts.topic, new TextEncoder().encode(line.slice(8)))
        say({ event: 'published' })
      } catch (err) {
        say({ event: 'error', message: String(err) })
      }
    }
  }
})
process.stdin.on('end', async () => { await node.stop(); process.exit(0) })
