"""libp2p inside Pinion: identities, the asyncio/trio bridge, py-libp2p fixes and the two hosts."""
