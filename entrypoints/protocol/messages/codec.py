"""The two tagged unions, one per direction (`ClientMessage`, `ServerMessage`), and the
decoders and the encoder built once from them."""

from __future__ import annotations

import msgspec

from entrypoints.protocol.messages.client import (
    CancelOrder,
    CreateSession,
    DeleteSession,
    GetResults,
    GetSession,
    ListSessions,
    OrderBatch,
    PauseSimulation,
    QueryPositions,
    ResumeSession,
    ResumeSimulation,
    StartSimulation,
    TickAck,
)
from entrypoints.protocol.messages.frames import Envelope
from entrypoints.protocol.messages.sessions import (
    ConnectionReady,
    Error,
    SessionCreated,
    SessionDeleted,
    SessionError,
    SessionInfo,
    SessionList,
)
from entrypoints.protocol.messages.simulation import (
    AccountSnapshot,
    BatchAck,
    CurrentPositions,
    ExecutionReport,
    History,
    OrderCancelled,
    SimulationComplete,
    SimulationPaused,
    SimulationResults,
    SimulationResumed,
    SimulationStarted,
    StateSync,
    Tick,
    Ticks,
    WindowTickData,
)

ClientMessage = (
    CreateSession
    | GetSession
    | ListSessions
    | DeleteSession
    | StartSimulation
    | TickAck
    | OrderBatch
    | CancelOrder
    | PauseSimulation
    | ResumeSimulation
    | QueryPositions
    | GetResults
    | ResumeSession
)

ServerMessage = (
    ConnectionReady
    | SessionCreated
    | SessionInfo
    | SessionList
    | SessionDeleted
    | SessionError
    | Error
    | SimulationStarted
    | History
    | Tick
    | Ticks
    | BatchAck
    | ExecutionReport
    | AccountSnapshot
    | CurrentPositions
    | OrderCancelled
    | SimulationPaused
    | SimulationResumed
    | SimulationComplete
    | SimulationResults
    | StateSync
)

# Built once; msgspec decoders and encoders are reusable and thread-safe.
client_decoder: msgspec.json.Decoder[ClientMessage] = msgspec.json.Decoder(ClientMessage)
envelope_decoder: msgspec.json.Decoder[Envelope] = msgspec.json.Decoder(Envelope)
server_decoder: msgspec.json.Decoder[ServerMessage] = msgspec.json.Decoder(ServerMessage)
encoder = msgspec.json.Encoder(decimal_format="string")
window_tick_decoder: msgspec.json.Decoder[WindowTickData] = msgspec.json.Decoder(WindowTickData)
