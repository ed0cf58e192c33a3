// The generated messages, enums and services, for apps that build requests by hand.
export * from "./gen/secureconnect/auth/v1/auth_pb.js";
export * from "./gen/secureconnect/call/v1/call_pb.js";
export * from "./gen/secureconnect/conversation/v1/conversation_pb.js";
export * from "./gen/secureconnect/drive/v1/drive_pb.js";
export * from "./gen/secureconnect/event/v1/event_pb.js";
export * from "./gen/secureconnect/message/v1/message_pb.js";
export * from "./gen/secureconnect/poll/v1/poll_pb.js";
export * from "./gen/secureconnect/presence/v1/presence_pb.js";
export * from "./gen/secureconnect/type/v1/type_pb.js";
export * from "./gen/secureconnect/user/v1/user_pb.js";
