// A js-libp2p peer (TCP, Noise, Yamux, identify), inside a libp2p private network unless the
// secret is "none", for Pinion's libp2p interop tests.
// Usage: node pnet_peer.mjs <64-hex secret | none> [dial <multiaddr>]
// Prints one JSON line per event on stdout; exits when stdin closes.
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

const [secret, mode, target] = process.argv.slice(2)
const say = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')

const swarmKey = new TextEncoder().encode(`/key/swarm/psk/1.0.0/\n/base16/\n${secret}`)
const privateNetwork = secret === 'none' ? {} : { connectionProtector: preSharedKey({ psk: swarmKey, timeout: 3000 }) }
const node = await createLibp2p({
  addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  ...privateNetwork,
  services: { identify: identify() }
})
node.addEventListener('peer:connect', (evt) => say({ event: 'connect', peer: evt.detail.toString() }))
node.addEventListener('peer:identify', (evt) => say({
  event: 'identify',
  peer: evt.detail.peerId.toString(),
  agent: evt.detail.agentVersion,
  protocols: evt.detail.protocols
}))
say({ event: 'ready', id: node.peerId.toString(), addrs: node.getMultiaddrs().map(String) })

if (mode === 'dial') {
  try {
    const conn = await node.dial(multiaddr(target), { signal: AbortSignal.timeout(5000) })
    say({ event: 'dialed', peer: conn.remotePeer.toString() })
  } catch (err) {
    say({ event: 'error', message: String(err) })
  }
}

process.stdin.resume()
process.stdin.on('end', async () => { await node.stop(); process.exit(0) })
